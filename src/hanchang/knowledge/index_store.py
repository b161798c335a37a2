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

from sqlalchemy import select

from hanchang.core.versions import OPEN_END, version_validity
from hanchang.knowledge.index import CollectionIndex, IndexInput, KeyedIndex, RetrievalIndex
from hanchang.knowledge.ingest import indexed_text
from hanchang.knowledge.sealed_text import agency_of_collection, readable_rows, vector_of
from hanchang.knowledge.shared_index import SharedIndexStore
from hanchang.store.db import Database
from hanchang.store.keyring import keyring_of
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
            keyed = self._keyed(collection.id)
            index = CollectionIndex.load(directory, keyed)
            if index is None:
                index = self.rebuild(collection.id, collection.index_generation)
            self._cache[collection.id] = (collection.index_generation, index)
            return index

    def _keyed(self, collection_id: int) -> KeyedIndex | None:
        """How a keyed collection's index hashes its terms and seals its vectors (None: clear)."""
        with self.db.session() as session:
            row = session.execute(select(Collection.agency_id, Collection.keyed_index)
                                  .where(Collection.id == collection_id)).first()
            if row is None or not row.keyed_index:
                return None
            return KeyedIndex.of(keyring_of(session), row.agency_id, collection_id, session)

    def _lock_for(self, collection_id: int) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.RLock())

    def rebuild(self, collection_id: int, generation: int) -> RetrievalIndex:
        if self.shared is not None:
            return self.shared.rebuild(collection_id, generation)
        with self._lock_for(collection_id):  # one build of a collection at a time in this process
            keyed = self._keyed(collection_id)
            index = CollectionIndex.build(self._inputs(collection_id), keyed)
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
                select(Chunk.id, Chunk.version_id, Chunk.ordinal, Chunk.collection_id, Chunk.terms, Chunk.text,
                       Chunk.section, Chunk.embedding, Document.id.label("document_id"), Document.title)
                .join(Document, Document.id == Chunk.document_id)
                .where(Chunk.collection_id == collection_id)
                .order_by(Chunk.id)
            ).all()
            opened = readable_rows(keyring_of(session), {collection_id: agency_of_collection(session, collection_id)},
                                   rows, session)
        return [
            IndexInput(row["id"], row["terms"].split(), indexed_text(row["title"], row["section"], row["text"]),
                       *validity.get(row["version_id"], (0, OPEN_END)), vector_of(row["embedding"]))
            for row in opened
        ]
