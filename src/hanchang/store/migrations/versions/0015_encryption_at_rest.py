"""Encryption at rest: agencies' wrapped data keys, collections whose index holds keyed term
hashes, and titles wide enough for their ciphertext. Existing S/C rows are sealed by the
background sweep (hanchang/knowledge/sealing_sweep.py, resumable), not here: a migration runs
without the key provider.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agency_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_agency_keys_agency", "agency_keys", ["agency_id", "purpose", "state"])
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("keyed_index", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("search_collections") as batch:
        batch.add_column(sa.Column("keyed", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("title", type_=sa.Text, existing_type=sa.String(300), existing_nullable=False)
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("title", type_=sa.Text, existing_type=sa.String(200), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("title", type_=sa.String(200), existing_type=sa.Text, existing_nullable=False)
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("title", type_=sa.String(300), existing_type=sa.Text, existing_nullable=False)
    with op.batch_alter_table("search_collections") as batch:
        batch.drop_column("keyed")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("keyed_index")
    op.drop_index("ix_agency_keys_agency", "agency_keys")
    op.drop_table("agency_keys")
