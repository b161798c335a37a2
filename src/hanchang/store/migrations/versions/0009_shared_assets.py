"""Shared AI assets: agents, prompt snippets, the common library and its versions, forks,
the adoption checklist; which agent answered a call or a message.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _agency() -> sa.Column:
    return sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False)


def _user(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


def _when(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("agent_id", sa.Integer, nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("agent_id", sa.Integer, nullable=True))
    op.create_table(
        "agents", _id(), _agency(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("collections", sa.Text, nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("connectors", sa.Text, nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("examples", sa.Text, nullable=False),
        _user("created_by"),
        sa.Column("forked_from", sa.Integer, nullable=True),
        sa.Column("forked_version", sa.Integer, nullable=True),
        _when(), _when("updated_at"),
        sa.UniqueConstraint("agency_id", "name", name="uq_agents_agency_name"),
    )
    op.create_table(
        "prompt_snippets", _id(), _agency(),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _user("created_by"),
        sa.Column("forked_from", sa.Integer, nullable=True),
        _when(),
        sa.UniqueConstraint("agency_id", "title", name="uq_prompt_snippets_agency_title"),
    )
    op.create_table(
        "shared_assets", _id(),
        sa.Column("kind", sa.String(16), nullable=False), _agency(),
        sa.Column("source_ref", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("licence", sa.String(200), nullable=False),
        sa.Column("published_version", sa.Integer, nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
        _user("created_by"), _when(), _when("updated_at"),
        sa.UniqueConstraint("kind", "agency_id", "source_ref", name="uq_shared_assets_source"),
    )
    op.create_table(
        "shared_asset_versions", _id(),
        sa.Column("asset_id", sa.Integer, sa.ForeignKey("shared_assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        _user("submitted_by"), _user("reviewed_by"),
        sa.Column("review_note", sa.Text, nullable=False),
        _when(),
        sa.UniqueConstraint("asset_id", "version", name="uq_shared_asset_versions"),
    )
    op.create_table(
        "asset_uses", _id(),
        sa.Column("asset_id", sa.Integer, sa.ForeignKey("shared_assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False), _agency(), _user("user_id"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("target_ref", sa.String(100), nullable=False),
        _when(),
    )
    op.create_index("ix_asset_uses_asset", "asset_uses", ["asset_id"])
    op.create_table(
        "checklist_answers", _id(), _agency(),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("item", sa.String(16), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("evidence", sa.String(500), nullable=False),
        _user("updated_by"), _when("updated_at"),
        sa.UniqueConstraint("agency_id", "project", "item", name="uq_checklist_answers"),
    )


def downgrade() -> None:
    op.drop_table("checklist_answers")
    op.drop_index("ix_asset_uses_asset", "asset_uses")
    for table in ("asset_uses", "shared_asset_versions", "shared_assets", "prompt_snippets", "agents"):
        op.drop_table(table)
    for table in ("messages", "usage_records"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("agent_id")
