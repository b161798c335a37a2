"""A throwaway Hanchang home with one ingested collection, for benchmarks and experiments."""

from __future__ import annotations

import atexit
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from hanchang.bootstrap import open_keyring
from hanchang.config import load_settings
from hanchang.core.grades import Grade
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import discover, ingest
from hanchang.store import migrate
from hanchang.store.db import Database


def scratch_postgres(server_url: str, keep: bool = False) -> str:
    """A new, empty database on the PostgreSQL server of `server_url`, dropped at exit unless
    `keep`; its URL."""
    base, _, _ = server_url.rpartition("/")
    name = f"hanchang_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    if not keep:
        atexit.register(drop)
    return f"{base}/{name}"


def build_collection(folder: Path, name: str = "bench", postgres: str | None = None, grade: str = "O",
                     home: Path | None = None) -> tuple[IndexStore, object, dict]:
    """Ingest every file under `folder` into a fresh collection; returns store, collection, timings.
    With `postgres` (a server URL) the collection lives in a scratch database there and is searched
    through the shared index inside PostgreSQL; otherwise SQLite and the embedded index."""
    home = home or Path(tempfile.mkdtemp(prefix="hanchang-bench-"))
    settings = load_settings(home=home)
    db = Database(scratch_postgres(postgres) if postgres else f"sqlite:///{home / 'bench.db'}")
    migrate.upgrade(db.engine)
    with db.session() as session:
        from hanchang.store.accounts import create_agency

        create_agency(session, "BENCH", "benchmark")
    open_keyring(settings, db)  # S/C collections are sealed at rest, as on a platform
    with db.session() as session:
        collection = kc.create(session, "BENCH", name, Grade.parse(grade))
    store = IndexStore(settings.home, db)
    sources, skipped, _ = discover([folder])
    started = time.perf_counter()
    with db.session() as session:
        collection = session.merge(collection)
        results = ingest(session, collection, sources)
        generation = collection.index_generation
    ingested = time.perf_counter()
    with db.session() as session:
        collection = session.get(type(collection), collection.id)
    store.rebuild(collection.id, generation)
    built = time.perf_counter()
    failed = [r for r in results if r.status == "failed"] + skipped
    timings = {"files": len(sources), "failed": len(failed), "chunks": sum(r.chunks for r in results),
               "ingest_s": round(ingested - started, 2), "index_build_s": round(built - ingested, 2),
               "total_s": round(built - started, 2)}
    return store, collection, timings
