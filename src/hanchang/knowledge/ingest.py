"""Ingestion: parse, chunk and analyse files, then apply every change in one transaction.

Re-ingesting is incremental: a file whose content hash is unchanged is skipped; a changed
file replaces its current version's chunks, or — with a later `effective_from` — becomes a
new version and the old one is kept as superseded history; `prune` removes documents under
the given folders whose files are gone. Three steps: `plan` reads what the collection holds,
`prepare` parses, analyses and embeds outside any transaction (a long scan holds no lock), and
`apply` writes in one short transaction; a crash before its commit leaves the collection
exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hanchang.core.grades import Grade, passage_grade
from hanchang.knowledge import collections as kc
from hanchang.knowledge import sealed_text
from hanchang.knowledge.analysis import KoreanAnalyzer, shared_analyzer
from hanchang.knowledge.chunking import chunk_document
from hanchang.knowledge.embedder import Embedder, EmbeddingRefused
from hanchang.knowledge.parsers import DocumentError, parse, supported_extensions
from hanchang.store.keyring import keyring_of
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion, utcnow

MAX_FILE_BYTES = 50 * 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    key: str  # stable identity in the collection (absolute path, or "upload:<name>")
    name: str  # what the user calls it


@dataclass
class FileResult:
    name: str
    status: str  # ingested | updated | new_version | unchanged | failed | pruned
    chunks: int = 0
    reason: str = ""
    document_id: int | None = None
    version: int | None = None
    warnings: list[str] = field(default_factory=list)
    vectors: object = None  # numpy array, one row per chunk, when an embedder is configured


@dataclass
class _Prepared:
    source: SourceFile
    content_hash: str
    size: int
    title: str = ""
    parser: str = ""
    pages: int | None = None
    ocr_pages: list[int] = field(default_factory=list)
    chunks: list[tuple[str, str, int | None, str]] = field(default_factory=list)  # text, section, page, terms
    warnings: list[str] = field(default_factory=list)
    vectors: object = None  # numpy array, one row per chunk, when an embedder is configured


def discover(paths: Iterable[Path]) -> tuple[list[SourceFile], list[FileResult], list[str]]:
    """Files under the given paths (recursive); unsupported ones reported, roots for pruning."""
    files, skipped, roots = [], [], []
    for path in paths:
        path = path.expanduser().resolve()
        if path.is_dir():
            roots.append(str(path))
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.startswith("."):
                    continue
                if child.suffix.lower() in supported_extensions():
                    files.append(SourceFile(child, str(child), str(child.relative_to(path.parent))))
                else:
                    skipped.append(FileResult(str(child.relative_to(path.parent)), "failed",
                                              reason="지원하지 않는 형식 (unsupported type)"))
        elif path.is_file():
            files.append(SourceFile(path, str(path), path.name))
        else:
            skipped.append(FileResult(str(path), "failed", reason="파일이 없습니다 (no such file)"))
    return files, skipped, roots


def _hash(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _latest(session: Session, document_id: int) -> DocumentVersion | None:
    return session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                          .order_by(DocumentVersion.number.desc()).limit(1))


def indexed_text(title: str, section: str, text: str) -> str:
    """What a chunk is found by: its document title, its section path (if different), its text."""
    head = title if not section or section == title else f"{title}\n{section}"
    return f"{head}\n{text}"


def _prepare(source: SourceFile, digest: str) -> _Prepared | FileResult:
    size = source.path.stat().st_size
    if size > MAX_FILE_BYTES:
        return FileResult(source.name, "failed",
                          reason=f"파일이 {MAX_FILE_BYTES // 1024 // 1024} MB보다 큽니다 (file too large)")
    prepared = _Prepared(source, digest, size)
    try:
        parsed = parse(source.path, source.name)
    except DocumentError as exc:
        return FileResult(source.name, "failed", reason=str(exc))
    except Exception as exc:  # a parser bug on one odd file must not abort the batch
        log.exception("parser failed on %s", source.name)
        return FileResult(source.name, "failed",
                          reason=f"문서를 읽는 중 오류가 났습니다 (parser error: {type(exc).__name__}). "
                                 "다른 형식(HWPX, PDF 등)으로 저장해 다시 올려 주세요.")
    drafts = chunk_document(parsed)
    if not drafts:
        return FileResult(source.name, "failed", reason="본문 글자가 없습니다 (no text found)")
    prepared.title, prepared.parser, prepared.pages = parsed.title, parsed.parser, parsed.pages
    prepared.ocr_pages = parsed.ocr_pages
    prepared.chunks = [(d.text, d.section, d.page, "") for d in drafts]
    prepared.warnings = parsed.warnings
    return prepared


def _analyse(prepared: list[_Prepared], analyzer: KoreanAnalyzer) -> None:
    """Kiwi over every chunk of the run in one batch (it parallelises across chunks)."""
    texts = [indexed_text(p.title, section, text) for p in prepared for text, section, _, _ in p.chunks]
    terms = iter(analyzer.morphemes_many(texts))
    for p in prepared:
        p.chunks = [(text, section, page, " ".join(next(terms))) for text, section, page, _ in p.chunks]


def _embed(prepared: _Prepared, embedder: Embedder, grade: Grade) -> FileResult | None:
    """Vectors for a file's chunks, or a failure when its grade may not go to the model."""
    texts = [indexed_text(prepared.title, section, text) for text, section, _, _ in prepared.chunks]
    try:
        prepared.vectors = embedder.embed(texts, grade)
    except EmbeddingRefused as exc:
        return FileResult(prepared.source.name, "failed", reason=f"임베딩 불가 (embedding refused): {exc}")
    return None


@dataclass
class Planned:
    """One source as the collection had it when planned: its digest, and what is known of it."""

    source: SourceFile
    digest: str = ""
    result: FileResult | None = None  # decided already (unchanged, missing)
    existing_grade: str | None = None


def plan(session: Session, collection: Collection, sources: list[SourceFile],
         effective_from: date | None = None) -> list[Planned]:
    """What each source is to the collection now: unchanged ones are decided here (reads only)."""
    planned = []
    for source in sources:
        if not source.path.is_file():
            planned.append(Planned(source, result=FileResult(source.name, "failed",
                                                             reason="파일이 없습니다 (no such file)")))
            continue
        existing = session.scalar(select(Document).where(Document.collection_id == collection.id,
                                                         Document.source_key == source.key))
        latest = _latest(session, existing.id) if existing else None
        digest = _hash(source.path)
        if latest is not None and latest.content_hash == digest and (
                effective_from is None or latest.effective_from == effective_from):
            planned.append(Planned(source, digest, FileResult(source.name, "unchanged", latest.chunk_count,
                                                              document_id=existing.id, version=latest.number)))
        else:
            planned.append(Planned(source, digest, existing_grade=existing.grade if existing else None))
    return planned


def prepare(planned: list[Planned], collection_grade: str, grade: Grade, analyzer: KoreanAnalyzer | None = None,
            progress: Callable[[str], None] | None = None,
            embedder: Embedder | None = None) -> list[_Prepared | FileResult]:
    """Parse, chunk, analyse and embed what changed: the slow part, outside any transaction (a
    scanned PDF read for minutes holds no lock). One bad file fails alone."""
    analyzer = analyzer or shared_analyzer()
    out: list[_Prepared | FileResult] = []
    for item in planned:
        out.append(item.result if item.result is not None else _prepare(item.source, item.digest))
        if progress:
            progress(item.source.name)
    ready = [p for p in out if isinstance(p, _Prepared)]
    _analyse(ready, analyzer)
    if embedder:
        grades = {item.source.key: item.existing_grade for item in planned}
        for position, p in enumerate(out):
            if not isinstance(p, _Prepared):
                continue
            existing_grade = grades.get(p.source.key)
            document_grade = max(grade, Grade.parse(existing_grade)) if existing_grade else grade
            # What may embed it is decided by the passage grade, never by the upload's own label.
            refused = _embed(p, embedder, passage_grade(collection_grade, document_grade))
            if refused:
                out[position] = refused
    return out


def apply(session: Session, collection: Collection, prepared: list[_Prepared | FileResult], grade: Grade,
          effective_from: date | None = None, prune_roots: list[str] | None = None,
          sources: list[SourceFile] = ()) -> list[FileResult]:
    """Write what was prepared, inside the caller's (short) transaction. Each document is read
    again here: one another upload changed meanwhile is compared with what it is now."""
    results: list[FileResult] = []
    changed = False
    for item in prepared:
        if isinstance(item, FileResult):
            results.append(item)
            continue
        existing = session.scalar(select(Document).where(Document.collection_id == collection.id,
                                                         Document.source_key == item.source.key))
        latest = _latest(session, existing.id) if existing else None
        if latest is not None and latest.content_hash == item.content_hash and (
                effective_from is None or latest.effective_from == effective_from):
            results.append(FileResult(item.source.name, "unchanged", latest.chunk_count, document_id=existing.id,
                                      version=latest.number))
            continue
        results.append(_apply(session, collection, existing, latest, item, grade, effective_from))
        changed = True
    if prune_roots:
        seen = {s.key for s in sources}
        for document in session.scalars(select(Document).where(Document.collection_id == collection.id)):
            under_root = any(document.source_key.startswith(root.rstrip("/") + "/") for root in prune_roots)
            if under_root and document.source_key not in seen:
                results.append(FileResult(document.source_key, "pruned", document_id=document.id))
                session.delete(document)
                changed = True
    if changed:
        kc.touch(collection)
    session.flush()
    return results


def ingest(
    session: Session,
    collection: Collection,
    sources: list[SourceFile],
    grade: Grade | None = None,
    effective_from: date | None = None,
    prune_roots: list[str] | None = None,
    analyzer: KoreanAnalyzer | None = None,
    progress: Callable[[str], None] | None = None,
    embedder: Embedder | None = None,
) -> list[FileResult]:
    """Plan, prepare and apply the sources inside the caller's transaction (the short form, for
    a session already open; `operations.ingest_sources` keeps parsing outside the transaction)."""
    grade = grade or Grade.parse(collection.grade)
    planned = plan(session, collection, sources, effective_from)
    prepared = prepare(planned, collection.grade, grade, analyzer, progress, embedder)
    return apply(session, collection, prepared, grade, effective_from, prune_roots, sources)


def _apply(session: Session, collection: Collection, existing: Document | None,
           latest: DocumentVersion | None, prepared: _Prepared, grade: Grade,
           effective_from: date | None) -> FileResult:
    if existing is None:
        existing = Document(collection_id=collection.id, source_key=prepared.source.key, title="", grade=grade.value)
        session.add(existing)
        session.flush()
        status = "ingested"
    else:
        existing.updated_at = utcnow()
        existing.grade = max(Grade.parse(existing.grade), grade).value
        status = "updated"
    sealed = sealed_text.must_seal(session, collection, existing.grade)
    title = prepared.title[:300]
    existing.title = keyring_of(session).seal(collection.agency_id, sealed_text.title_where(existing.id), title,
                                              session) if sealed else title
    if sealed and not collection.keyed_index:
        collection.keyed_index = True  # from now on its index holds keyed hashes of terms (rebuilt whole)
    later = effective_from is not None and (
        latest is None or latest.effective_from is None or effective_from > latest.effective_from)
    new_version = latest is None or later
    if new_version:
        number = (latest.number + 1) if latest else 1
        version = DocumentVersion(document_id=existing.id, number=number, content_hash=prepared.content_hash,
                                  effective_from=effective_from, parser=prepared.parser,
                                  size_bytes=prepared.size, pages=prepared.pages, chunk_count=0,
                                  ocr_pages=json.dumps(prepared.ocr_pages) if prepared.ocr_pages else None)
        session.add(version)
        session.flush()
        if latest is not None:
            status = "new_version"
    else:
        version = latest
        session.execute(delete(Chunk).where(Chunk.version_id == version.id))
        version.content_hash, version.parser = prepared.content_hash, prepared.parser
        version.size_bytes, version.pages = prepared.size, prepared.pages
        version.ocr_pages = json.dumps(prepared.ocr_pages) if prepared.ocr_pages else None
        if effective_from is not None:
            version.effective_from = effective_from
    vectors = prepared.vectors
    rows = []
    for i, (text, section, page, terms) in enumerate(prepared.chunks):
        fields = sealed_text.ChunkFields(text, section, terms, vectors[i].tobytes() if vectors is not None else None)
        if sealed:
            fields = sealed_text.seal_chunk(session, collection.agency_id, version.id, i, fields)
        rows.append(Chunk(collection_id=collection.id, document_id=existing.id, version_id=version.id, ordinal=i,
                          text=fields.text, section=fields.section, page=page, terms=fields.terms,
                          embedding=fields.embedding))
    session.add_all(rows)
    version.chunk_count = len(prepared.chunks)
    return FileResult(prepared.source.name, status, len(prepared.chunks), document_id=existing.id,
                      version=version.number, warnings=prepared.warnings)


def document_count(session: Session, collection_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Document)
                          .where(Document.collection_id == collection_id)) or 0
