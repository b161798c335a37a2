"""The shared retrieval index on PostgreSQL (knowledge/shared_index.py): terms, blocks of packed
postings per term, the chunks held with their validity, lengths and term ids, and the generation
of each collection the index reflects. Created on SQLite too (unused there), so both databases
share one schema.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_terms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("field", sa.SmallInteger, nullable=False),
        sa.Column("term", sa.Text, nullable=False),
        sa.UniqueConstraint("collection_id", "field", "term", name="uq_search_terms"),
    )
    op.create_table(
        "search_blocks",
        sa.Column("term_id", sa.Integer, sa.ForeignKey("search_terms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("block", sa.Integer, nullable=False),
        sa.Column("postings", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("term_id", "block"),
    )
    if op.get_bind().dialect.name == "postgresql":  # read whole and often: kept uncompressed
        op.execute("ALTER TABLE search_blocks ALTER COLUMN postings SET STORAGE EXTERNAL")
    op.create_table(
        "search_chunks",
        sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("collection_id", sa.Integer, nullable=False),
        sa.Column("valid_from", sa.Integer, nullable=False),
        sa.Column("valid_to", sa.Integer, nullable=False),
        sa.Column("morph_len", sa.Integer, nullable=False),
        sa.Column("gram_len", sa.Integer, nullable=False),
        sa.Column("terms", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_search_chunks_collection", "search_chunks", ["collection_id"])
    op.create_table(
        "search_collections",
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"),
                  primary_key=True, autoincrement=False),
        sa.Column("generation", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("search_collections")
    op.drop_index("ix_search_chunks_collection", "search_chunks")
    op.drop_table("search_chunks")
    op.drop_table("search_blocks")
    op.drop_table("search_terms")
