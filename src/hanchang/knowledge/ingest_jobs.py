"""Background ingestion: large uploads are read outside the request, file by file.

An upload too large to read while the user waits (a long scan, many files) becomes a job: its
files wait under HANCHANG_HOME/ingest-jobs/<id>, and a runner thread in the server process on
the same host reads them one at a time. Each file is planned, parsed (outside any transaction:
an OCR of hundreds of pages holds no database lock) and then written in one short transaction
together with its audit record and the job's own record of it, so a job stopped anywhere —
cancelled, or the server stopped or killed — has lost nothing and repeats nothing: a restart
resumes from the first file not yet written. Progress (file, page) is kept on the job; a
cancellation or a shutdown is noticed between pages.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import SEE_EVERY_AGENCY, can
from hanchang.core.principal import Principal, Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge import sealed_files
from hanchang.knowledge.embedder import Embedder
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import FileResult, SourceFile, apply, plan, prepare
from hanchang.knowledge.parsers import ocr
from hanchang.store.db import Database
from hanchang.store.tables import Agency, Collection, IngestJob, User, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5  # a running job's heartbeat and progress, written at most this often
STALE_S = 60.0  # a running job whose heartbeat is older was stopped with its server: resumed
POLL_S = 2.0
REBUILD_EVERY_S = 20.0  # a long job makes what it has read searchable at least this often
FINAL = ("succeeded", "failed", "cancelled")


class JobStopped(BaseException):
    """Raised between pages or files to stop a job; a BaseException so no parser's own error
    handling takes it for a broken file."""

    def __init__(self, reason: str):  # "cancelled" | "shutdown"
        super().__init__(reason)
        self.reason = reason


def host_name() -> str:
    return socket.gethostname()[:255]


def jobs_folder(home: Path) -> Path:
    return home / "ingest-jobs"


def _as_utc(moment):
    from datetime import UTC
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def describe(job: IngestJob) -> dict[str, Any]:
    return {"id": job.id, "object": "ingest_job", "collection_id": job.collection_id, "status": job.status,
            "files_total": job.files_total, "files_done": job.files_done, "current": job.current,
            "cancel_requested": job.cancel_requested, "results": json.loads(job.results or "[]"),
            "error": job.error, "grade": job.grade,
            "created_at": _as_utc(job.created_at).isoformat() if job.created_at else None,
            "started_at": _as_utc(job.started_at).isoformat() if job.started_at else None,
            "finished_at": _as_utc(job.finished_at).isoformat() if job.finished_at else None}


def enqueue(session: Session, principal: Principal, collection: Collection, folder: Path,
            sources: list[SourceFile], grade: Grade | None, effective_from: date | None) -> IngestJob:
    """A job for files already stored in `folder`; audited with it."""
    job = IngestJob(agency_id=principal.agency_id, collection_id=collection.id, user_id=principal.user_id,
                    host=host_name(), status="queued", grade=grade.value if grade else None,
                    effective_from=effective_from, files_total=len(sources), files_done=0, results="[]",
                    files=json.dumps([{"name": s.name, "path": str(s.path), "key": s.key} for s in sources],
                                     ensure_ascii=False), cancel_requested=False)
    session.add(job)
    session.flush()
    trail.record_by(session, principal, "documents.upload_job", {"job": job.id, "collection_id": collection.id,
                                                                  "files": [s.name for s in sources]})
    job_dir = folder.parent / str(job.id)
    shutil.rmtree(job_dir, ignore_errors=True)  # left by a database this home held before: not this job's
    folder.rename(job_dir)  # the files now belong to the job
    job.files = json.dumps([{"name": s.name, "path": str(job_dir / s.path.name), "key": s.key} for s in sources],
                           ensure_ascii=False)
    return job


def get_visible(session: Session, principal: Principal, job_id: int) -> IngestJob:
    job = session.get(IngestJob, job_id)
    if job is None or not can(principal, "ingest_jobs.follow", job):
        raise NotFound("그런 문서 처리 작업이 없습니다.", f"ingest job {job_id} not found")
    return job


def list_visible(session: Session, principal: Principal, limit: int = 50) -> list[IngestJob]:
    query = select(IngestJob).order_by(IngestJob.id.desc()).limit(limit)
    if not can(principal, SEE_EVERY_AGENCY):
        query = query.where(IngestJob.agency_id == principal.agency_id)
        if not can(principal, "ingest_jobs.follow"):
            query = query.where(IngestJob.user_id == principal.user_id)
    return list(session.scalars(query))


def request_cancel(session: Session, principal: Principal, job: IngestJob, home: Path) -> IngestJob:
    """A queued job ends at once; a running one stops at its next page (what it wrote stays)."""
    if job.status in FINAL:
        return job
    if job.status == "queued":
        job.status, job.finished_at, job.current = "cancelled", utcnow(), None
        shutil.rmtree(jobs_folder(home) / str(job.id), ignore_errors=True)
    else:
        job.cancel_requested = True
    trail.record_by(session, principal, "documents.upload_job.cancel", {"job": job.id, "status": job.status})
    return job


class IngestJobRunner:
    """Runs this host's jobs, one at a time, in a thread of the server process."""

    def __init__(self, db: Database, store: IndexStore, home: Path,
                 embedder_for: Callable[[Principal], Embedder | None] = lambda principal: None):
        self.db, self.store, self.home = db, store, home
        self.embedder_for = embedder_for
        self.host = host_name()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> IngestJobRunner:
        self._thread = threading.Thread(target=self._loop, name="ingest-jobs", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop at the next page; the job in hand goes back to the queue, to resume at the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._requeue_stale()
                job_id = self._claim()
            except Exception:  # the database away for a moment: try again shortly
                log.warning("ingest jobs: cannot read the queue", exc_info=True)
                job_id = None
            if job_id is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                continue
            self._run(job_id)

    def _requeue_stale(self) -> None:
        limit = utcnow() - timedelta(seconds=STALE_S)
        with self.db.session() as session:
            session.execute(update(IngestJob).where(IngestJob.host == self.host, IngestJob.status == "running",
                                                    IngestJob.heartbeat_at < limit)
                            .values(status="queued", current=None))

    def _claim(self) -> int | None:
        with self.db.session() as session:
            job_id = session.scalar(select(IngestJob.id).where(IngestJob.host == self.host,
                                                               IngestJob.status == "queued")
                                    .order_by(IngestJob.id).limit(1))
            if job_id is None:
                return None
            taken = session.execute(update(IngestJob).where(IngestJob.id == job_id, IngestJob.status == "queued")
                                    .values(status="running", heartbeat_at=utcnow(), started_at=utcnow()))
            return job_id if taken.rowcount == 1 else None

    # -- one job ---------------------------------------------------------------------------
    def _check(self, job_id: int, current: str | None = None, *, force: bool = False) -> None:
        """Heartbeat and progress (at most every HEARTBEAT_S), and stop if asked."""
        if self._stopping.is_set():
            raise JobStopped("shutdown")
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        with self.db.session() as session:
            job = session.get(IngestJob, job_id)
            job.heartbeat_at = utcnow()
            if current is not None:
                job.current = current[:400]
            cancelled = job.cancel_requested
        if cancelled:
            raise JobStopped("cancelled")

    def _run(self, job_id: int) -> None:
        self._last_beat = 0.0
        with self.db.session() as session:
            job = session.get(IngestJob, job_id)
            files = json.loads(job.files)
            done = len(json.loads(job.results or "[]"))
            collection_id, grade, effective_from = job.collection_id, job.grade, job.effective_from
            user = session.get(User, job.user_id)
            agency = session.get(Agency, user.agency_id)
            principal = Principal(user.id, user.name, agency.id, agency.code, Role(user.role), None)
        level = Grade.parse(grade) if grade else None
        last_rebuild = time.monotonic()
        try:
            for index in range(done, len(files)):
                entry = files[index]
                self._check(job_id, f"{entry['name']} ({index + 1}/{len(files)})", force=True)
                self._one_file(job_id, principal, collection_id, level, effective_from, entry, index, len(files))
                if time.monotonic() - last_rebuild > REBUILD_EVERY_S:
                    self._rebuild(collection_id)
                    last_rebuild = time.monotonic()
            self._finish(job_id, principal, "succeeded")
        except JobStopped as stopped:
            if stopped.reason == "shutdown":
                with self.db.session() as session:  # resumed at the next start, from the next file
                    session.execute(update(IngestJob).where(IngestJob.id == job_id)
                                    .values(status="queued", current=None))
                self._rebuild(collection_id)
                return
            self._finish(job_id, principal, "cancelled")
        except Exception as exc:
            log.exception("ingest job %s failed", job_id)
            self._finish(job_id, principal, "failed", f"{type(exc).__name__}: {str(exc)[:300]}")

    def _one_file(self, job_id: int, principal: Principal, collection_id: int, level: Grade | None,
                  effective_from: date | None, entry: dict[str, str], index: int, total: int) -> None:
        with self.db.session() as session:
            agency_id = session.get(Collection, collection_id).agency_id
        with sealed_files.opened(Path(entry["path"]), self.db.keyring, agency_id, collection_id,
                                 entry["key"]) as path:  # a sealed upload, opened into memory
            source = SourceFile(path, entry["key"], entry["name"])
            with self.db.session() as session:
                collection = session.get(Collection, collection_id)
                collection_grade = collection.grade
                planned = plan(session, collection, [source], effective_from)
            grade = level or Grade.parse(collection_grade)

            def on_page(pages_done: int, pages_total: int) -> None:
                self._check(job_id, f"{entry['name']} ({index + 1}/{total}) · {pages_done}/{pages_total}쪽")
            hook = ocr.page_hook.set(on_page)
            try:
                prepared = prepare(planned, collection_grade, grade,
                                   embedder=self.embedder_for(principal))
            finally:
                ocr.page_hook.reset(hook)
        if self._stopping.is_set():
            raise JobStopped("shutdown")
        with self.db.session() as session:  # the file, its audit record and the job's record of it: together
            collection = session.get(Collection, collection_id)
            result = apply(session, collection, prepared, grade, effective_from)[0]
            trail.record_by(session, principal, "documents.upload",
                            {"collection_id": collection_id, "job": job_id, "files": [result.name],
                             "statuses": [result.status]})
            job = session.get(IngestJob, job_id)
            job.results = json.dumps([*json.loads(job.results or "[]"), _result_json(result)], ensure_ascii=False)
            job.files_done = index + 1
            job.heartbeat_at = utcnow()

    def _rebuild(self, collection_id: int) -> None:
        with self.db.session() as session:
            collection = session.get(Collection, collection_id)
            generation = collection.index_generation if collection else None
        if generation is not None:
            self.store.rebuild(collection_id, generation)

    def _finish(self, job_id: int, principal: Principal, status: str, error: str | None = None) -> None:
        with self.db.session() as session:
            job = session.get(IngestJob, job_id)
            job.status, job.error, job.current, job.finished_at = status, error, None, utcnow()
            collection_id = job.collection_id
            trail.record_by(session, principal, f"documents.upload_job.{status}",
                            {"job": job_id, "files_done": job.files_done, "files_total": job.files_total})
        shutil.rmtree(jobs_folder(self.home) / str(job_id), ignore_errors=True)
        try:
            self._rebuild(collection_id)
        except Exception:  # the index heals at the next search
            log.warning("ingest job %s: index rebuild failed", job_id, exc_info=True)


def _result_json(result: FileResult) -> dict[str, Any]:
    return {"name": result.name, "status": result.status, "chunks": result.chunks, "reason": result.reason,
            "document_id": result.document_id, "version": result.version, "warnings": result.warnings}


def collection_of(session: Session, principal: Principal, collection_id: int) -> Collection:
    collection = kc.get_readable(session, principal, collection_id)
    kc.require_writer(principal, collection)
    return collection
