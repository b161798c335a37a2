"""Block TRUNCATE of the audit trail on PostgreSQL (row triggers do not fire for TRUNCATE).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PG_TRIGGER = """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only()"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no TRUNCATE; DELETE is blocked already
        for table in ("audit_records", "audit_chain_head"):
            op.execute(PG_TRIGGER.format(table=table))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_records", "audit_chain_head"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_records_no_truncate ON {table}")
