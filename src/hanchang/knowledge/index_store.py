"""Where collection indexes live: on disk under HANCHANG_HOME/indexes, cached in memory.

The database is the source of truth; an index is a derived file tagged with the collection's
`index_generation`. A worker that finds a newer generation (another process ingested) loads
it, or rebuilds it from the chunks' stored terms.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
from sqlalchemy import select

from hanchang.core.versions import OPEN_END
from hanchang.knowledge.index import CollectionIndex, IndexInput, RetrievalIndex
from hanchang.knowledge.ingest import indexed_text
from hanchang.store.db import Database
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion


class IndexStore:
    def __init__(self, home: Path, db: Database):
        self.root = home / "indexes"
        self.db = db
        self._cache: dict[int, tuple[int, RetrievalIndex]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _dir(self, collection_id: int, generation: int) -> Path:
        return self.root / f"c{collection_id}" / f"g{generation}"

    def get(self, collection: Collection) -> RetrievalIndex:
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

    def rebuild(self, collection_id: int, generation: int) -> CollectionIndex:
        with self._lock_for(collection_id):  # one build of a collection at a time in this process
            index = CollectionIndex.build(self._inputs(collection_id))
            index.save(self._dir(collection_id, generation))
            self._drop_old(collection_id, generation)
            return index

    def _drop_old(self, collection_id: int, keep: int) -> None:
        """Remove generations older than `keep` (never a newer one another worker just built)."""
        folder = self.root / f"c{collection_id}"
        for child in folder.iterdir() if folder.is_dir() else ():
            name = child.name
            if name.startswith("g") and name[1:].isdigit() and int(name[1:]) < keep:
                shutil.rmtree(child, ignore_errors=True)

    def forget(self, collection_id: int) -> None:
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
            validity = _validity(versions)
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


def _validity(versions) -> dict[int, tuple[int, int]]:
    """Each version is in force from its date until the next version's date."""
    out: dict[int, tuple[int, int]] = {}
    by_document: dict[int, list] = {}
    for version in versions:
        by_document.setdefault(version.document_id, []).append(version)
    for chain in by_document.values():
        for current, following in zip(chain, [*chain[1:], None], strict=True):
            start = current.effective_from.toordinal() if current.effective_from else 0
            end = following.effective_from.toordinal() if following and following.effective_from \
                else (start if following else OPEN_END)
            out[current.id] = (start, max(start, end) if following else OPEN_END)
    return out

