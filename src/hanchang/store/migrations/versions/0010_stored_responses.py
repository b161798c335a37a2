"""Stored responses of /v1/responses (store, previous_response_id), scoped to their user; the
pages of a document version that were read by OCR (citations say so); single sign-on: users'
identities at agency providers, sign-ins under way, and the ID token a session logs out with.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("messages", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_index("ix_stored_responses_user", "stored_responses", ["user_id", "created_at"])
    with op.batch_alter_table("document_versions") as batch:
        batch.add_column(sa.Column("ocr_pages", sa.Text, nullable=True))
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("issuer", "subject", name="uq_identities_issuer_subject"),
    )
    op.create_table(
        "sign_on_attempts",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("id_token", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("id_token")
    op.drop_table("sign_on_attempts")
    op.drop_table("user_identities")
    with op.batch_alter_table("document_versions") as batch:
        batch.drop_column("ocr_pages")
    op.drop_index("ix_stored_responses_user", table_name="stored_responses")
    op.drop_table("stored_responses")
