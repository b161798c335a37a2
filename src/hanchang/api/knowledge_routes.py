"""/api/collections, /api/documents, /api/search: knowledge bases over HTTP.

Every query runs under the caller's agency (`knowledge.collections.readable`); writes need
the collection's agency admin or a platform admin. Uploads are size-limited, sniffed by
content and zip-bomb-guarded; a failed upload leaves the collection as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import can, require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse
from hanchang.http.types import DbId, GradeIn, OptionalGradeIn
from hanchang.knowledge import collections as kc
from hanchang.knowledge import ingest_jobs, sealed_files
from hanchang.knowledge.embedder import acting
from hanchang.knowledge.ingest import MAX_FILE_BYTES, SourceFile
from hanchang.knowledge.operations import ingest_sources
from hanchang.knowledge.parsers import page_count
from hanchang.knowledge.sealed_text import must_seal, open_title
from hanchang.knowledge.search import display_source, search
from hanchang.store.keyring import is_sealed, keyring_of
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion

router = APIRouter(prefix="/api")
MAX_FILES_PER_UPLOAD = 50


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    grade: GradeIn = Grade.OPEN
    is_common: bool = False
    description: str = Field(default="", max_length=2000)



class CollectionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grade: OptionalGradeIn = None
    description: str | None = Field(default=None, max_length=2000)



class DocumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grade: GradeIn



def _collection_json(collection: Collection, principal: Principal, documents: int) -> dict:
    writable = can(principal, "collections.change", collection)
    return {"id": collection.id, "name": collection.name, "agency": collection.agency.code,
            "grade": collection.grade, "is_common": collection.is_common,
            "description": collection.description, "documents": documents, "writable": writable,
            "updated_at": collection.updated_at.isoformat()}


@router.get("/collections")
async def list_collections(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            counts = dict(session.execute(select(Document.collection_id, func.count())
                                          .group_by(Document.collection_id)).all())
            return [_collection_json(c, principal, counts.get(c.id, 0))
                    for c in kc.list_readable(session, principal)]
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/collections", status_code=201)
async def create_collection(body: CollectionIn, request: Request,
                            principal: Principal = Depends(require_principal)):
    require(principal, "collections.create", body)

    def work():
        with platform_of(request).db.session() as session:
            created = kc.create(session, principal.agency_code, body.name, body.grade, body.is_common,
                                body.description)
            trail.record_by(session, principal, "collections.create",
                   {"collection": created.name, "grade": created.grade, "common": created.is_common})
            session.flush()
            session.refresh(created)
            return _collection_json(created, principal, 0)
    return JSONResponse(await run_in_threadpool(work), status_code=201)


@router.patch("/collections/{collection_id}")
async def update_collection(collection_id: DbId, body: CollectionPatch, request: Request,
                            principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            collection = kc.get_readable(session, principal, collection_id)
            kc.require_writer(principal, collection)
            if body.grade is not None and body.grade.value != collection.grade:
                change = {"collection": collection.name, "before": collection.grade,
                          "after": body.grade.value}
                trail.record_by(session, principal, "collections.grade", change)
                collection.grade = body.grade.value
                kc.touch(collection)
            if body.description is not None:
                collection.description = body.description
            return _collection_json(collection, principal, 0)
    return JSONResponse(await run_in_threadpool(work))


@router.delete("/collections/{collection_id}", status_code=204)
async def delete_collection(collection_id: DbId, request: Request,
                            principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            collection = kc.get_readable(session, principal, collection_id)
            kc.require_writer(principal, collection)
            trail.record_by(session, principal, "collections.delete", {"collection": collection.name})
            session.delete(collection)
        platform_of(request).knowledge.forget(collection_id)
    await run_in_threadpool(work)
    return Response(status_code=204)


@router.get("/collections/{collection_id}/documents")
async def list_documents(collection_id: DbId, request: Request,
                         principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            collection = kc.get_readable(session, principal, collection_id)
            rows = session.execute(
                select(Document, func.max(DocumentVersion.number), func.count(DocumentVersion.id))
                .join(DocumentVersion, DocumentVersion.document_id == Document.id)
                .where(Document.collection_id == collection.id)
                .group_by(Document.id)).all()
            keyring = keyring_of(session)
            listed = [{"id": d.id, "title": open_title(keyring, collection.agency_id, d.id, d.title, session),
                       "source": display_source(d.source_key), "grade": d.grade, "versions": count,
                       "latest_version": latest, "updated_at": d.updated_at.isoformat()} for d, latest, count in rows]
            return sorted(listed, key=lambda d: (d["title"], d["id"]))
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/collections/{collection_id}/documents")
async def upload_documents(
    collection_id: DbId, request: Request,
    files: list[UploadFile] = File(...),
    grade: str | None = Form(None),
    effective_from: date | None = Form(None),
    background: bool | None = Form(None),
    principal: Principal = Depends(require_principal),
):
    """Upload files; each gets its own result. Nothing is kept of a run that fails. A large upload
    (or `background=true`) becomes a job (202, `job`), read file by file with progress at
    /api/ingest-jobs/{id}."""
    try:
        level = Grade.parse(grade) if grade else None
    except ValueError:
        raise InvalidInput(f"알 수 없는 등급입니다: '{grade[:20]}'. O (공개), S (민감), C (기밀) 중 하나를 쓰세요.",
                              f"unknown grade '{grade[:20]}': use O (공개), S (민감) or C (기밀)") from None
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise kc.KnowledgeError(f"한 번에 {MAX_FILES_PER_UPLOAD}개까지 올릴 수 있습니다.",
                                f"at most {MAX_FILES_PER_UPLOAD} files per upload")
    platform = platform_of(request)
    with platform.db.session() as session:
        collection = kc.get_readable(session, principal, collection_id)
        kc.require_writer(principal, collection)
        # An S/C upload is received into memory and never reaches the disk in clear.
        sealed = must_seal(session, collection, (level or Grade.OPEN).value)
        agency_id = collection.agency_id
    jobs_root = ingest_jobs.jobs_folder(platform.settings.home)
    jobs_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="incoming-", dir=jobs_root))
    queued = False
    memory: list[int] = []
    try:
        sources, too_big = [], []
        for number, upload in enumerate(files):
            name = Path((upload.filename or f"upload-{number}").replace("\\", "/")).name
            if not name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name) or len(name) > 255:
                too_big.append({"name": name.encode("unicode_escape").decode()[:255], "status": "failed",
                                "chunks": 0, "reason": "파일 이름에 쓸 수 없는 글자(제어 문자)가 있습니다. 이름을 "
                                "바꿔 다시 올려 주세요. (the file name holds control characters; rename it)"})
                continue
            target = folder / f"{number}-{name}"
            if sealed:
                fd, target = sealed_files.in_memory(name)
                memory.append(fd)
            size = 0
            with target.open("wb") as out:
                while block := await upload.read(1 << 20):
                    size += len(block)
                    if size > MAX_FILE_BYTES:
                        break
                    out.write(block)
            if size > MAX_FILE_BYTES:
                too_big.append({"name": name, "status": "failed", "chunks": 0,
                                "reason": f"파일이 {MAX_FILE_BYTES // 1024 // 1024} MB보다 큽니다 "
                                          "(file too large)"})
                continue
            sources.append(SourceFile(target, f"upload:{name}", name))

        def audit(session, report) -> None:  # committed with the documents, or not at all
            trail.record_by(session, principal, "documents.upload",
                            {"collection_id": collection_id, "files": [r.name for r in report.results],
                             "statuses": [r.status for r in report.results]})

        if sources and platform.ingest_jobs is not None and (
                background or (background is None and _is_large(platform.settings, sources))):
            if sealed:  # what waits for the job waits sealed
                sources = [SourceFile(sealed_files.seal_to(folder / f"{n}-{s.name}", s.path, platform.db.keyring,
                                                           agency_id, collection_id, s.key), s.key, s.name)
                           for n, s in enumerate(sources)]

            def queue():
                with platform.db.session() as session:
                    collection = kc.get_readable(session, principal, collection_id)
                    kc.require_writer(principal, collection)
                    return ingest_jobs.describe(ingest_jobs.enqueue(session, principal, collection, folder, sources,
                                                                    level, effective_from))
            job = await run_in_threadpool(queue)
            queued = True
            platform.ingest_jobs.wake()
            return JSONResponse({"job": job, "results": too_big}, status_code=202,
                                headers={"location": f"/api/ingest-jobs/{job['id']}"})

        def work():
            return ingest_sources(platform.db, platform.knowledge, collection_id, sources, level, effective_from,
                                  embedder=acting(platform.embedder, principal, "embeddings.ingest"), record=audit)
        report = await run_in_threadpool(work) if sources else None
    finally:
        for fd in memory:
            os.close(fd)
        if not queued:
            shutil.rmtree(folder, ignore_errors=True)
    results = too_big + [{"name": r.name, "status": r.status, "chunks": r.chunks, "reason": r.reason,
                          "document_id": r.document_id, "version": r.version, "warnings": r.warnings}
                         for r in (report.results if report else [])]
    ok = any(r["status"] != "failed" for r in results)
    return JSONResponse({"results": results}, status_code=200 if ok else 422)


def _is_large(settings, sources: list[SourceFile]) -> bool:
    """Read in the background: over the size, or a PDF or image of more pages than the settings say."""
    if sum(s.path.stat().st_size for s in sources) > settings.knowledge.background_over_bytes:
        return True
    return any((page_count(s.path) or 0) > settings.knowledge.background_over_pages for s in sources)


@router.get("/ingest-jobs")
async def list_ingest_jobs(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return [ingest_jobs.describe(j) for j in ingest_jobs.list_visible(session, principal)]
    return JSONResponse({"object": "list", "data": await run_in_threadpool(work)})


@router.get("/ingest-jobs/{job_id}")
async def get_ingest_job(job_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return ingest_jobs.describe(ingest_jobs.get_visible(session, principal, job_id))
    return JSONResponse(await run_in_threadpool(work))


@router.post("/ingest-jobs/{job_id}/cancel")
async def cancel_ingest_job(job_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    platform = platform_of(request)

    def work():
        with platform.db.session() as session:
            job = ingest_jobs.get_visible(session, principal, job_id)
            return ingest_jobs.describe(ingest_jobs.request_cancel(session, principal, job, platform.settings.home))
    return JSONResponse(await run_in_threadpool(work))


@router.patch("/documents/{document_id}")
async def update_document(document_id: DbId, body: DocumentPatch, request: Request,
                          principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            document, collection = _writable_document(session, principal, document_id)
            trail.record_by(session, principal, "documents.grade",
                            {"document_id": document.id, "before": document.grade, "after": body.grade.value})
            document.grade = body.grade.value
            if must_seal(session, collection, document.grade):
                collection.keyed_index = True  # the sweep seals the document's text in the background
            kc.touch(collection)
            return {"id": document.id, "grade": document.grade}
    return JSONResponse(await run_in_threadpool(work))


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(document_id: DbId, request: Request,
                          principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            document, collection = _writable_document(session, principal, document_id)
            sealed = is_sealed(document.title)  # a sealed title stays out of the audit trail
            trail.record_by(session, principal, "documents.delete",
                            {"document_id": document.id, **({} if sealed else {"title": document.title})})
            session.delete(document)
            kc.touch(collection)
    await run_in_threadpool(work)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/reindex")
async def reindex(collection_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            collection = kc.get_readable(session, principal, collection_id)
            kc.require_writer(principal, collection)
            kc.touch(collection)
            trail.record_by(session, principal, "collections.reindex", {"collection": collection.name})
            generation = collection.index_generation
        index = platform_of(request).knowledge.reindex(collection_id, generation)
        return {"id": collection_id, "chunks": len(index)}
    return JSONResponse(await run_in_threadpool(work))


@router.get("/search")
async def search_route(request: Request, q: str,
                       collection: Annotated[list[str] | None, Query()] = None,
                       top_k: int = 5, as_of: date | None = None,
                       principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            chosen = [kc.get_readable(session, principal, ref) for ref in collection] if collection \
                else kc.list_readable(session, principal)
        results = search(platform_of(request).knowledge, chosen, q, max(1, min(top_k, 50)), as_of,
                         embedder=acting(platform_of(request).embedder, principal, "embeddings.query"))
        return [r.as_dict() for r in results]
    return JSONResponse({"results": await run_in_threadpool(work)})


def _readable_document(session, principal: Principal, document_id: int) -> Document:
    document = session.scalar(select(Document).where(
        Document.id == document_id,
        Document.collection_id.in_(kc.readable(principal).with_only_columns(Collection.id))))
    if document is None:
        raise NotFound(f"문서 {document_id}을(를) 찾을 수 없습니다.",
                                    f"document {document_id} not found")
    return document


def _writable_document(session, principal: Principal, document_id: int) -> tuple[Document, Collection]:
    """A document the caller may see (404 otherwise) and change (403 otherwise), with its collection."""
    document = _readable_document(session, principal, document_id)
    collection = session.get(Collection, document.collection_id)
    kc.require_writer(principal, collection)
    return document, collection


def chunk_for(session, principal: Principal, chunk_id: int) -> Chunk | None:
    """A chunk, if the principal may read its collection (for opening a citation)."""
    return session.scalar(select(Chunk).where(
        Chunk.id == chunk_id,
        Chunk.collection_id.in_(kc.readable(principal).with_only_columns(Collection.id))))
