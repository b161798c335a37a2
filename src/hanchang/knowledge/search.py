"""Search one or more collections; results carry text, source, section, grade and version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import select

from hanchang.core.grades import Grade, passage_grade
from hanchang.knowledge.analysis import KoreanAnalyzer, shared_analyzer
from hanchang.knowledge.embedder import Embedder, EmbeddingRefused
from hanchang.knowledge.index import Hit
from hanchang.knowledge.index_store import IndexStore, in_force
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion

MAX_TOP_K = 100


@dataclass(frozen=True)
class SearchResult:
    text: str
    source: str
    title: str
    section: str
    page: int | None
    score: float
    grade: str
    version: int
    effective_from: str | None
    superseded: bool
    collection: str
    document_id: int
    chunk_id: int

    def as_dict(self) -> dict:
        return asdict(self)


# A reranker reorders (and may cut) the fused results: a cross-encoder or an LLM judge.
Reranker = Callable[[str, list["SearchResult"]], list["SearchResult"]]


def search(store: IndexStore, collections: list[Collection], query: str, top_k: int = 5,
           as_of: date | None = None, analyzer: KoreanAnalyzer | None = None,
           embedder: Embedder | None = None, grade: Grade = Grade.OPEN,
           rerank: Reranker | None = None) -> list[SearchResult]:
    query = query.strip()
    if not query or not collections:
        return []
    top_k = max(1, min(top_k, MAX_TOP_K))
    morphemes = (analyzer or shared_analyzer()).morphemes(query)
    indexes = [(collection, store.get(collection)) for collection in collections]
    vector = _query_vector(embedder, query, grade) if any(i.vectors is not None for _, i in indexes) else None
    hits: list[tuple[Hit, Collection, int]] = []
    for collection, index in indexes:
        for rank, hit in enumerate(index.search(morphemes, query, top_k, as_of, vector)):
            hits.append((hit, collection, rank))
    # Equal fused scores keep each index's own order (its first field breaks the tie).
    hits.sort(key=lambda h: (-h[0].score, h[2]))
    hits = hits[:top_k]
    order = {h[0].chunk_id: position for position, h in enumerate(hits)}
    if not hits:
        return []
    by_id = {h[0].chunk_id: h for h in hits}
    with store.db.session() as session:
        rows = session.execute(
            select(Chunk.id, Chunk.text, Chunk.section, Chunk.page, Chunk.version_id,
                   Document.id.label("document_id"), Document.source_key, Document.title,
                   Document.grade, DocumentVersion.number, DocumentVersion.effective_from)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
            .where(Chunk.id.in_(list(by_id)))
        ).all()
    validity = {}
    for collection in {id(h[1]): h[1] for h in hits}.values():
        index = store.get(collection)
        for position, chunk_id in enumerate(index.chunk_ids):
            if int(chunk_id) in by_id:
                validity[int(chunk_id)] = int(index.valid_to[position])
    results = []
    for row in rows:
        hit, collection, _ = by_id[row.id]
        grade = passage_grade(collection.grade, row.grade).value
        results.append(SearchResult(
            text=row.text, source=display_source(row.source_key), title=row.title, section=row.section,
            page=row.page, score=hit.score, grade=grade, version=row.number,
            effective_from=row.effective_from.isoformat() if row.effective_from else None,
            superseded=not in_force(validity.get(row.id, 0)), collection=collection.name,
            document_id=row.document_id, chunk_id=row.id,
        ))
    results.sort(key=lambda r: order[r.chunk_id])
    return rerank(query, results) if rerank else results


def _query_vector(embedder: Embedder | None, query: str, grade: Grade):
    """The query's vector, when an embedder may see it; lexical search alone otherwise."""
    if embedder is None:
        return None
    try:
        return embedder.embed([query], grade)[0]
    except EmbeddingRefused:
        return None


def display_source(key: str) -> str:
    """What a user calls the source: the upload or sample file name, or the ingested path."""
    for prefix in ("upload:", "sample:"):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key
