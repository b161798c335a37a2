"""The evaluation harness (hanchang/evals): versioned datasets, evals in OpenAI's shape, runs
with progress and their output items.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "eval_datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("agency_id", "name", "version", name="uq_eval_datasets_version"),
    )
    op.create_index("ix_eval_datasets_agency_id", "eval_datasets", ["agency_id"])
    op.create_table(
        "evals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data_source_config", sa.Text, nullable=False),
        sa.Column("testing_criteria", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        _when("created_at"),
    )
    op.create_index("ix_evals_agency_id", "evals", ["agency_id"])
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("eval_id", sa.String(64), sa.ForeignKey("evals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("data_source", sa.Text, nullable=False),
        sa.Column("dataset_name", sa.String(100), nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
        sa.Column("dataset_sha256", sa.String(64), nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("items_total", sa.Integer, nullable=False),
        sa.Column("items_done", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _when("created_at"), _when("started_at", True), _when("heartbeat_at", True), _when("finished_at", True),
    )
    op.create_index("ix_eval_runs_eval", "eval_runs", ["eval_id", "created_at"])
    op.create_index("ix_eval_runs_agency_id", "eval_runs", ["agency_id"])
    op.create_index("ix_eval_runs_status", "eval_runs", ["status"])
    op.create_table(
        "eval_output_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("sample", sa.Text, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("run_id", "position", name="uq_eval_output_items_position"),
    )
    op.create_index("ix_eval_output_items_run_id", "eval_output_items", ["run_id"])


def downgrade() -> None:
    op.drop_table("eval_output_items")
    op.drop_table("eval_runs")
    op.drop_table("evals")
    op.drop_table("eval_datasets")
