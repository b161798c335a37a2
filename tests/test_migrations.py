"""Migrations run up and down cleanly on SQLite and PostgreSQL, and match the tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hanchang.store import migrate
from hanchang.store.db import Database
from hanchang.store.tables import Base


def test_upgrade_downgrade_upgrade(database_url):
    db = Database(database_url)
    migrate.upgrade(db.engine)
    assert migrate.is_up_to_date(db.engine)
    assert {"agencies", "users", "api_keys", "usage_records"} <= set(inspect(db.engine).get_table_names())
    migrate.downgrade(db.engine, "base")
    assert "agencies" not in inspect(db.engine).get_table_names()
    migrate.upgrade(db.engine)
    migrate.upgrade(db.engine)  # idempotent
    db.dispose()


def test_models_and_migrations_agree(database_url):
    db = Database(database_url)
    migrate.upgrade(db.engine)
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.dispose()
    assert diff == []
