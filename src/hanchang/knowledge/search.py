"""Search one or more collections; results carry text, source, section, grade and version."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade, passage_grade
from hanchang.core.principal import Principal
from hanchang.core.versions import day_number, superseded
from hanchang.knowledge.analysis import KoreanAnalyzer, shared_analyzer
from hanchang.knowledge.collections import readable
from hanchang.knowledge.embedder import Embedder, EmbeddingRefused
from hanchang.knowledge.index import Hit
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.sealed_text import ChunkFields, open_chunk, open_title, readable_rows
from hanchang.store.keyring import keyring_of
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion

MAX_TOP_K = 100
SEALED_EXPANSION = 5  # base64 of UTF-8 Korean (3 bytes a character) plus the header, over the clear text


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
    ocr: bool = False  # the passage's page was read by OCR (a scan)

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
            select(Chunk.id, Chunk.text, Chunk.section, Chunk.page, Chunk.version_id, Chunk.ordinal,
                   Chunk.collection_id, Document.id.label("document_id"), Document.source_key, Document.title,
                   Document.grade, DocumentVersion.number, DocumentVersion.effective_from,
                   DocumentVersion.ocr_pages)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
            .where(Chunk.id.in_(list(by_id)))
        ).all()
        rows = _opened(session, collections, rows)
    validity: dict[int, int] = {}
    for collection in {id(h[1]): h[1] for h in hits}.values():
        validity.update(store.get(collection).valid_until(set(by_id)))
    today = day_number()
    results = []
    for row in rows:
        hit, collection, _ = by_id[row.id]
        grade = passage_grade(collection.grade, row.grade).value
        results.append(SearchResult(
            text=row.text, source=display_source(row.source_key), title=row.title, section=row.section,
            page=row.page, score=hit.score, grade=grade, version=row.number,
            effective_from=row.effective_from.isoformat() if row.effective_from else None,
            superseded=superseded(validity.get(row.id, 0), today), collection=collection.name,
            document_id=row.document_id, chunk_id=row.id, ocr=read_by_ocr(row.ocr_pages, row.page),
        ))
    results.sort(key=lambda r: order[r.chunk_id])
    return rerank(query, results) if rerank else results


def whole_collections(store: IndexStore, collections: list[Collection], budget_chars: int) -> list[SearchResult]:
    """Every passage in force today of the collections, in document order — if their text fits
    `budget_chars`; [] otherwise (then `search` picks the best passages instead)."""
    ids = [c.id for c in collections]
    by_id = {c.id: c for c in collections}
    with store.db.session() as session:
        total = session.scalar(select(func.sum(func.length(Chunk.text))).where(Chunk.collection_id.in_(ids))) or 0
        # A sealed text is longer than its clear text (at most SEALED_EXPANSION times): measure again opened.
        if total == 0 or total > budget_chars * SEALED_EXPANSION:
            return []
        rows = session.execute(
            select(Chunk.id, Chunk.text, Chunk.section, Chunk.page, Chunk.collection_id, Chunk.version_id,
                   Chunk.ordinal, Document.id.label("document_id"), Document.source_key, Document.title,
                   Document.grade, DocumentVersion.number, DocumentVersion.effective_from, DocumentVersion.ocr_pages)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
            .where(Chunk.collection_id.in_(ids)).order_by(Document.id, Chunk.ordinal)).all()
        rows = _opened(session, collections, rows)
    if sum(len(row.text) for row in rows) > budget_chars:
        return []
    today = day_number()
    current: set[int] = set()
    for collection in collections:
        current |= store.get(collection).in_force_ids(today)
    return [SearchResult(row.text, display_source(row.source_key), row.title, row.section, row.page, 1.0,
                         passage_grade(by_id[row.collection_id].grade, row.grade).value, row.number,
                         row.effective_from.isoformat() if row.effective_from else None, False,
                         by_id[row.collection_id].name, row.document_id, row.id,
                         read_by_ocr(row.ocr_pages, row.page))
            for row in rows if row.id in current]


def _opened(session: Session, collections: list[Collection], rows) -> list[SimpleNamespace]:
    """The rows with their sealed text and titles opened (one that fails its check left out)."""
    agencies = {c.id: c.agency_id for c in collections}
    return [SimpleNamespace(**row) for row in readable_rows(keyring_of(session), agencies, rows, session)]


def read_by_ocr(ocr_pages: str | None, page: int | None) -> bool:
    return bool(ocr_pages) and page is not None and page in json.loads(ocr_pages)


def open_passage(session: Session, principal: Principal, chunk_id: int) -> dict[str, Any]:
    """The whole passage behind a citation, if the caller may read its collection (404 otherwise)."""
    row = session.execute(
        select(Chunk, Document, Collection, DocumentVersion.ocr_pages)
        .join(Document, Document.id == Chunk.document_id)
        .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
        .join(Collection, Collection.id == Chunk.collection_id)
        .where(Chunk.id == chunk_id, Chunk.collection_id.in_(readable(principal).with_only_columns(Collection.id)))
    ).first()
    if row is None:
        raise NotFound("출처를 찾을 수 없습니다.", f"passage {chunk_id} not found")
    chunk, document, collection, ocr_pages = row
    keyring = keyring_of(session)
    fields = open_chunk(keyring, collection.agency_id, chunk.version_id, chunk.ordinal,
                        ChunkFields(chunk.text, chunk.section, "", None), session)
    return {"text": fields.text, "section": fields.section, "page": chunk.page,
            "ocr": read_by_ocr(ocr_pages, chunk.page),
            "title": open_title(keyring, collection.agency_id, document.id, document.title, session),
            "source": display_source(document.source_key),
            "grade": passage_grade(collection.grade, document.grade).value, "collection": collection.name}


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
