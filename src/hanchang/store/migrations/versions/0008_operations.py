"""Operations and governance: usage figures for SLOs and reports, feedback review, budget
overrides, model health samples.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

USAGE_COLUMNS = (
    sa.Column("cost_won", sa.Float, nullable=False, server_default="0"),
    sa.Column("grounded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("data_grade", sa.String(1), nullable=True),
    sa.Column("rerouted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("pii_masked", sa.Integer, nullable=False, server_default="0"),
)
FEEDBACK_COLUMNS = (
    sa.Column("review_status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("expected_answer", sa.Text, nullable=False, server_default=""),
    sa.Column("reviewed_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL",
                                                        name="fk_feedback_reviewed_by"), nullable=True),
    sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for column in USAGE_COLUMNS:
            batch.add_column(column._copy())
    with op.batch_alter_table("feedback") as batch:
        for column in FEEDBACK_COLUMNS:
            batch.add_column(column._copy())
    op.create_table(
        "budget_overrides",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String(64), nullable=False, unique=True),
        sa.Column("requests", sa.Integer, nullable=True),
        sa.Column("tokens", sa.Integer, nullable=True),
        sa.Column("won", sa.Float, nullable=True),
        sa.Column("until", sa.Date, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "health_samples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=True),
    )
    op.create_index("ix_health_samples_created", "health_samples", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_health_samples_created", "health_samples")
    op.drop_table("health_samples")
    op.drop_table("budget_overrides")
    with op.batch_alter_table("feedback") as batch:
        for column in reversed(FEEDBACK_COLUMNS):
            batch.drop_column(column.name)
    with op.batch_alter_table("usage_records") as batch:
        for column in reversed(USAGE_COLUMNS):
            batch.drop_column(column.name)
