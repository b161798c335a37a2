"""Model health is sampled by one process of all hosts and workers on PostgreSQL: the holder of
an advisory lock on a connection of its own; when that process stops, or its connection is lost,
another takes over at its next round. On SQLite the one process always samples."""

from __future__ import annotations

from sqlalchemy import text

from hanchang.ops.health import SamplingLease
from hanchang.store import migrate
from hanchang.store.db import Database


def test_one_process_samples_and_another_takes_over(database_url):
    first, second = Database(database_url), Database(database_url)  # two processes' engines
    migrate.upgrade(first.engine)
    try:
        a, b = SamplingLease(first), SamplingLease(second)
        if not database_url.startswith("postgresql"):
            assert a.held() and b.held()
            return
        assert a.held() and not b.held()
        assert a.held() and not b.held()  # kept from round to round
        a.release()  # a stopped worker
        assert b.held() and not a.held()
        # The sampler's connection is cut (a database restart, a network break): the lock went with it.
        with second.engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                    "WHERE locktype = 'advisory' AND classid = 18499 AND objid = 18501"))
            connection.commit()
        assert not b.held()
        assert a.held()
        a.release()
        b.release()
    finally:
        first.dispose()
        second.dispose()
