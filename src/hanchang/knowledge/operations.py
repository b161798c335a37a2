"""Ingestion as one unit of work: discover, apply in one transaction, then rebuild the index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from hanchang.core.grades import Grade
from hanchang.knowledge.embedder import Embedder
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import FileResult, SourceFile, apply, discover, plan, prepare
from hanchang.store.db import Database
from hanchang.store.tables import Collection

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "sample_corpus"
SAMPLE_COLLECTION = "sample"


@dataclass
class IngestReport:
    results: list[FileResult]

    def count(self, *statuses: str) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    @property
    def usable(self) -> bool:
        """At least one file is in the collection after the run (ingested, updated or unchanged)."""
        return self.count("ingested", "updated", "new_version", "unchanged", "pruned") > 0


def ingest_sources(db: Database, store: IndexStore, collection_id: int, sources: list[SourceFile],
                   grade: Grade | None = None, effective_from: date | None = None,
                   prune_roots: list[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   embedder: Embedder | None = None,
                   record: Callable[[Session, IngestReport], None] | None = None) -> IngestReport:
    """Ingest: what exists is read in a short transaction, files are parsed outside any, and
    everything is written in one short transaction; `record` writes the run's audit record
    inside it (both or neither)."""
    with db.session() as session:
        collection = session.get(Collection, collection_id)
        collection_grade = collection.grade
        planned = plan(session, collection, sources, effective_from)
    level = grade or Grade.parse(collection_grade)
    prepared = prepare(planned, collection_grade, level, progress=progress, embedder=embedder)
    with db.session() as session:
        collection = session.get(Collection, collection_id)
        results = apply(session, collection, prepared, level, effective_from, prune_roots, sources)
        generation = collection.index_generation
        if record is not None:
            record(session, IngestReport(results))
    store.rebuild(collection_id, generation)  # after the commit; a crash here is healed on next search
    return IngestReport(results)


def ingest_paths(db: Database, store: IndexStore, collection_id: int, paths: list[Path],
                 grade: Grade | None = None, effective_from: date | None = None, prune: bool = False,
                 progress: Callable[[str], None] | None = None,
                 embedder: Embedder | None = None) -> IngestReport:
    sources, skipped, roots = discover(paths)
    report = ingest_sources(db, store, collection_id, sources, grade, effective_from,
                            roots if prune else None, progress, embedder)
    report.results[:0] = skipped
    return report


def sample_sources() -> list[SourceFile]:
    return [SourceFile(p, f"sample:{p.name}", p.name) for p in sorted(SAMPLE_CORPUS.glob("*.txt"))]
