"""Where collection indexes live: embedded, on disk under HANCHANG_HOME/indexes and cached in
memory (SQLite's default); or shared, as postings inside PostgreSQL (`shared_index.py`, the
default there), which every host queries.

The database is the source of truth; an index is derived and tagged with the collection's
`index_generation`. A worker that finds a newer generation (another process ingested) loads
it, or rebuilds it from the chunks' stored terms (shared: synchronises the postings).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
from sqlalchemy import select

from hanchang.core.versions import OPEN_END, version_validity
from hanchang.knowledge.index import CollectionIndex, IndexInput, RetrievalIndex
from hanchang.knowledge.ingest import indexed_text
from hanchang.knowledge.shared_index import SharedIndexStore
from hanchang.store.db import Database
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion

INDEX_KINDS = ("auto", "embedded", "postgres")


def uses_shared_index(db: Database, kind: str = "auto") -> bool:
    """`auto`: the shared index on PostgreSQL, the embedded one on SQLite."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"knowledge.index must be one of {', '.join(INDEX_KINDS)}, not {kind!r}")
    postgres = db.engine.dialect.name == "postgresql"
    if kind == "postgres" and not postgres:
        raise ValueError("knowledge.index 'postgres' needs a PostgreSQL database_url; use 'auto' or "
                         "'embedded' with SQLite.")
    return postgres and kind != "embedded"


class IndexStore:
    def __init__(self, home: Path, db: Database, kind: str = "auto"):
        self.root = home / "indexes"
        self.db = db
        self.shared = SharedIndexStore(db) if uses_shared_index(db, kind) else None
        self._cache: dict[int, tuple[int, RetrievalIndex]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _dir(self, collection_id: int, generation: int) -> Path:
        return self.root / f"c{collection_id}" / f"g{generation}"

    def get(self, collection: Collection) -> RetrievalIndex:
        if self.shared is not None:
            return self.shared.get(collection)
        cached = self._cache.get(collection.id)
        if cached and cached[0] == collection.index_generation:
            return cached[1]
        with self._lock_for(collection.id):
            cached = self._cache.get(collection.id)
            if cached and cached[0] == collection.index_generation:
                return cached[1]
            directory = self._dir(collection.id, collection.index_generation)
            index = CollectionIndex.load(directory)
            if index is None:
                index = self.rebuild(collection.id, collection.index_generation)
            self._cache[collection.id] = (collection.index_generation, index)
            return index

    def _lock_for(self, collection_id: int) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.RLock())

    def rebuild(self, collection_id: int, generation: int) -> RetrievalIndex:
        if self.shared is not None:
            return self.shared.rebuild(collection_id, generation)
        with self._lock_for(collection_id):  # one build of a collection at a time in this process
            index = CollectionIndex.build(self._inputs(collection_id))
            index.save(self._dir(collection_id, generation))
            self._drop_old(collection_id, generation)
            return index

    def reindex(self, collection_id: int, generation: int) -> RetrievalIndex:
        """Build the collection's index again from its chunks, from nothing."""
        if self.shared is not None:
            self.shared.forget(collection_id)
        return self.rebuild(collection_id, generation)

    def _drop_old(self, collection_id: int, keep: int) -> None:
        """Remove generations older than `keep` (never a newer one another worker just built)."""
        folder = self.root / f"c{collection_id}"
        for child in folder.iterdir() if folder.is_dir() else ():
            name = child.name
            if name.startswith("g") and name[1:].isdigit() and int(name[1:]) < keep:
                shutil.rmtree(child, ignore_errors=True)

    def forget(self, collection_id: int) -> None:
        if self.shared is not None:
            self.shared.forget(collection_id)
        self._cache.pop(collection_id, None)
        shutil.rmtree(self.root / f"c{collection_id}", ignore_errors=True)

    def _inputs(self, collection_id: int) -> list[IndexInput]:
        with self.db.session() as session:
            versions = session.execute(
                select(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.effective_from)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(Document.collection_id == collection_id)
                .order_by(DocumentVersion.document_id, DocumentVersion.number)
            ).all()
            validity = version_validity(versions)
            rows = session.execute(
                select(Chunk.id, Chunk.version_id, Chunk.terms, Chunk.text, Chunk.section,
                       Chunk.embedding, Document.title)
                .join(Document, Document.id == Chunk.document_id)
                .where(Chunk.collection_id == collection_id)
                .order_by(Chunk.id)
            ).all()
        return [
            IndexInput(row.id, row.terms.split(), indexed_text(row.title, row.section, row.text),
                       *validity.get(row.version_id, (0, OPEN_END)),
                       np.frombuffer(row.embedding, dtype=np.float32) if row.embedding else None)
            for row in rows
        ]
