"""Persistence: SQLAlchemy engine, tables and Alembic migrations (SQLite default, PostgreSQL prod)."""
