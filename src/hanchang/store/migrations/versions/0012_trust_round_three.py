"""Trust, round three: every connector has a zone and a highest grade it may receive; a proposed
call keeps its header parameters, the data grade it carries and the personal data found in it; a
sign-on attempt is bound to the browser that started it (a hash of a cookie only that browser
holds). Existing connectors keep what they could do: an MCP server's zone from its description,
OpenAPI connectors inside the network; internal ones may receive up to 기밀 (C), as before, and
external ones 공개 (O) only.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("zone", sa.String(16), nullable=False, server_default="internal"))
        batch.add_column(sa.Column("max_grade", sa.String(1), nullable=False, server_default="C"))
    connectors = sa.table("connectors", sa.column("id", sa.Integer), sa.column("spec", sa.Text),
                          sa.column("zone", sa.String), sa.column("max_grade", sa.String))
    bind = op.get_bind()
    for row in bind.execute(sa.select(connectors.c.id, connectors.c.spec)).all():
        if '"zone": "external"' in (row.spec or "") or '"zone":"external"' in (row.spec or ""):
            bind.execute(connectors.update().where(connectors.c.id == row.id).values(zone="external", max_grade="O"))
    # An agent published by its `agent:N` ref was kept under that ref, not its id (the model list
    # of every other agency then failed); kept by id from now on.
    assets = sa.table("shared_assets", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                      sa.column("agency_id", sa.Integer), sa.column("source_ref", sa.String))
    rows = bind.execute(sa.select(assets.c.id, assets.c.kind, assets.c.agency_id, assets.c.source_ref).where(
        assets.c.kind.in_(("agent", "prompt")))).all()
    taken = {(r.kind, r.agency_id, r.source_ref) for r in rows}
    for row in rows:
        ref = (row.source_ref or "").split(":")[-1]
        if ref != row.source_ref and ref.isdigit() and (row.kind, row.agency_id, ref) not in taken:
            bind.execute(assets.update().where(assets.c.id == row.id).values(source_ref=ref))
            taken.add((row.kind, row.agency_id, ref))
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("headers", sa.Text, nullable=True))
        batch.add_column(sa.Column("grade", sa.String(1), nullable=False, server_default="O"))
        batch.add_column(sa.Column("pii", sa.Text, nullable=True))
    with op.batch_alter_table("sign_on_attempts") as batch:
        batch.add_column(sa.Column("browser_binding", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("sign_on_attempts") as batch:
        batch.drop_column("browser_binding")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("pii")
        batch.drop_column("grade")
        batch.drop_column("headers")
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("max_grade")
        batch.drop_column("zone")
