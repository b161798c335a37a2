"""Append-only, hash-chained audit trail.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GENESIS = "0" * 64

# The product never updates or deletes audit records; the database refuses it too.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
]
PG_FUNCTION = """CREATE FUNCTION audit_records_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit records are append-only'; END; $$ LANGUAGE plpgsql"""
PG_TRIGGER = """CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
FOR EACH ROW EXECUTE FUNCTION audit_records_append_only()"""


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("user_name", sa.String(100), nullable=True),
        sa.Column("agency_code", sa.String(32), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("model_requested", sa.String(200), nullable=True),
        sa.Column("model_used", sa.String(200), nullable=True),
        sa.Column("declared_grade", sa.String(1), nullable=True),
        sa.Column("effective_grade", sa.String(1), nullable=True),
        sa.Column("grade_reason", sa.Text, nullable=True),
        sa.Column("pii_mode", sa.String(16), nullable=True),
        sa.Column("pii_counts", sa.Text, nullable=False),
        sa.Column("source_ids", sa.Text, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prompt_encrypted", sa.Text, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_created_at", "audit_records", ["created_at"])
    op.create_index("ix_audit_agency_created", "audit_records", ["agency_code", "created_at"])
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records")
        op.execute("DROP FUNCTION IF EXISTS audit_records_append_only()")
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_agency_created", table_name="audit_records")
    op.drop_index("ix_audit_created_at", table_name="audit_records")
    op.drop_table("audit_records")
