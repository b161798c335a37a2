"""Engine and sessions. SQLite in HANCHANG_HOME by default; PostgreSQL via HANCHANG_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # SQLAlchemy, not the driver, opens transactions (see _begin_immediate).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            # A transaction that reads, then writes (check, act, append its audit record) must
            # hold the write lock from its start: a deferred one fails at its first write when
            # another committed meanwhile (SQLITE_BUSY), or appends beside it. IMMEDIATE makes
            # concurrent writers queue (busy timeout 30 s); WAL readers are not blocked. A session
            # that only reads (`Database.reading`) begins deferred: it never waits for the lock,
            # so it may run while the same thread holds a write transaction.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Holds the engine and hands out transactional sessions."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(read_only=True), expire_on_commit=False)
        self.keyring = None  # store/keyring.Keyring, attached by bootstrap.open_keyring


    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work commits together, or rolls back together on any error."""
        session = self._sessions()
        session.info["keyring"] = self.keyring
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads (rolled back at the end): on SQLite it takes no write lock."""
        session = self._readers()
        session.info["keyring"] = self.keyring
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
