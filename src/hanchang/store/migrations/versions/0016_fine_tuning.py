"""The training room: fine-tuning datasets, jobs (with events and checkpoints) and the models
they make.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _agency() -> sa.Column:
    return sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "training_datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("file_id", sa.String(64), nullable=False, unique=True),
        _agency(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("train_count", sa.Integer, nullable=False),
        sa.Column("holdout_count", sa.Integer, nullable=False),
        sa.Column("split_seed", sa.Integer, nullable=False),
        sa.Column("pii_replaced", sa.Integer, nullable=False),
        sa.Column("examples", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("agency_id", "name", "version", name="uq_training_datasets_version"),
    )
    op.create_index("ix_training_datasets_agency_id", "training_datasets", ["agency_id"])
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        _agency(),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("training_dataset_id", sa.Integer,
                  sa.ForeignKey("training_datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("validation_dataset_id", sa.Integer,
                  sa.ForeignKey("training_datasets.id", ondelete="CASCADE"), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("hyperparameters", sa.Text, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("fine_tuned_model", sa.String(200), nullable=True),
        sa.Column("trained_tokens", sa.Integer, nullable=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("manifest", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("created_at"),
        _when("started_at", True),
        _when("heartbeat_at", True),
        _when("finished_at", True),
    )
    op.create_index("ix_fine_tuning_jobs_agency_id", "fine_tuning_jobs", ["agency_id"])
    op.create_index("ix_fine_tuning_jobs_status", "fine_tuning_jobs", ["status"])
    op.create_table(
        "fine_tuning_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=True),
        _when("created_at"),
    )
    op.create_index("ix_fine_tuning_events_job", "fine_tuning_events", ["job_id", "id"])
    op.create_table(
        "fine_tuning_checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("job_id", "step", name="uq_fine_tuning_checkpoints_step"),
    )
    op.create_index("ix_fine_tuning_checkpoints_job_id", "fine_tuning_checkpoints", ["job_id"])
    op.create_table(
        "trained_models",
        sa.Column("id", sa.String(200), primary_key=True),
        _agency(),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("fine_tuning_jobs.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("adapter_path", sa.String(500), nullable=False),
        sa.Column("adapter_sha256", sa.String(64), nullable=False),
        sa.Column("lora_scale", sa.Float, nullable=False),
        sa.Column("gate", sa.Text, nullable=True),
        _when("created_at"),
        _when("promoted_at", True),
    )
    op.create_index("ix_trained_models_agency_id", "trained_models", ["agency_id"])
    op.create_index("ix_trained_models_status", "trained_models", ["status"])


def downgrade() -> None:
    for table in ("trained_models", "fine_tuning_checkpoints", "fine_tuning_events", "fine_tuning_jobs",
                  "training_datasets"):
        op.drop_table(table)
