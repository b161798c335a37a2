"""Uploads as an attacker (or an unlucky clerk) sends them: a tiny PDF that declares a page of
gigapixels, a file name with a NUL byte, a scan of many pages. Each bad file fails alone with a
clear reason; a long scan is read in the background — with progress, cancellable, resumed after
a restart — while chat and sign-in go on."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from hanchang_devtools.scans import korean_font, scanned_pdf
from sqlalchemy import func, select

from conftest import default_models, launch_platform
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.parsers.ocr import engine_problem
from hanchang.store.tables import AuditRecord, Document, IngestJob

needs_ocr = pytest.mark.skipif(engine_problem() is not None or korean_font() is None,
                               reason=f"OCR engine ({engine_problem()}) or a Korean font missing (.ci/run has both)")
PAGES = ["데이터 보안 등급은 기밀, 민감, 공개의 세 가지로 구분한다.",
         "출장 여비는 실비로 정산하며 숙박비는 하루 칠만 원을 넘지 않는다.",
         "민원 처리 기간은 접수한 날부터 칠 일 이내로 한다.", "개인정보는 목적을 달성하면 지체 없이 파기한다.",
         "회의록은 회의가 끝난 날부터 삼 일 안에 작성한다.", "공용 차량은 업무 목적으로만 운행한다."]


def bomb_pdf(width_pt: int = 14_400) -> bytes:
    """A PDF of a few hundred bytes whose one (empty, text-less) page is 200 × 200 inches."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt} {width_pt}] >>".encode()]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def library(platform_factory, upstream):
    platform = platform_factory({"models": default_models(upstream.base_url)})
    platform.admin = platform.new_user_key("librarian", Role.AGENCY_ADMIN)
    with platform.db.session() as session:
        platform.collection = kc.create(session, "MOIS", "규정").id
    return platform


def upload(platform, files, **form):
    return httpx.post(f"{platform.url}/api/collections/{platform.collection}/documents",
                      headers=platform.headers(platform.admin), files=files, data=form, timeout=120)


@needs_ocr
def test_a_tiny_pdf_declaring_a_huge_page_fails_alone(library):
    assert len(bomb_pdf()) < 400
    answer = upload(library, [("files", ("bomb.pdf", bomb_pdf(), "application/pdf")),
                              ("files", ("규정.txt", "출장 여비는 실비로 정산한다.".encode(), "text/plain"))])
    assert answer.status_code == 200, answer.text
    results = {r["name"]: r for r in answer.json()["results"]}
    assert results["bomb.pdf"]["status"] == "failed" and "크기" in results["bomb.pdf"]["reason"]
    assert results["규정.txt"]["status"] == "ingested"


def test_a_nul_byte_in_one_file_name_fails_that_file_only(library):
    boundary = "hanchang-boundary"
    parts = []
    for name, text in (("bad\x00name.txt", "나쁜 이름"), ("good.txt", "출장 여비는 실비로 정산한다."),
                       ("tab\tname.txt", "탭")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: text/plain\r\n\r\n{text}\r\n")
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    answer = httpx.post(f"{library.url}/api/collections/{library.collection}/documents", content=body, timeout=30,
                        headers={**library.headers(library.admin),
                                 "content-type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 200, answer.text
    statuses = [(r["status"], r["reason"][:20]) for r in answer.json()["results"]]
    assert [s for s, _ in statuses].count("failed") == 2 and ("ingested", "") in statuses
    failed = [r for r in answer.json()["results"] if r["status"] == "failed"]
    assert all("제어 문자" in r["reason"] and "\x00" not in r["name"] for r in failed)


def wait_for(platform, job_id, condition, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{platform.url}/api/ingest-jobs/{job_id}", headers=platform.headers(platform.admin),
                        timeout=10).json()
        if condition(job):
            return job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the state: {job}")


def documents(platform) -> list[str]:
    with platform.db.session() as session:
        return list(session.scalars(select(Document.title).where(Document.collection_id == platform.collection)))


@needs_ocr
def test_a_long_scan_is_read_in_the_background_while_the_platform_answers(library, tmp_path):
    scan = scanned_pdf(PAGES, tmp_path / "스캔 규정집.pdf").read_bytes()
    started = upload(library, [("files", ("공지.txt", "회의실 예약은 하루 전까지 한다.".encode(), "text/plain")),
                               ("files", ("스캔 규정집.pdf", scan, "application/pdf"))], background="true")
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    assert started.headers["location"] == f"/api/ingest-jobs/{job['id']}" and job["files_total"] == 2
    reading = wait_for(library, job["id"], lambda j: "쪽" in (j["current"] or "") or j["status"] == "succeeded")
    # While the scan is read, the platform answers at once (no write lock held by the reading).
    began = time.monotonic()
    listed = httpx.get(library.url + "/api/collections", headers=library.headers(library.admin), timeout=10)
    chat = httpx.post(library.v1 + "/chat/completions", headers=library.headers(), timeout=10,
                      json={"model": "internal-a", "messages": [{"role": "user", "content": "안녕"}]})
    assert listed.status_code == 200 and chat.status_code == 200 and time.monotonic() - began < 3
    done = wait_for(library, job["id"], lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
    assert done["status"] == "succeeded" and done["files_done"] == 2, done
    assert [r["status"] for r in done["results"]] == ["ingested", "ingested"]
    assert reading["status"] in ("running", "succeeded")
    found = httpx.get(library.url + "/api/search", params={"q": "공용 차량 운행"}, timeout=10,
                      headers=library.headers(library.admin)).json()
    assert any("공용 차량" in hit["text"] for hit in found["results"])
    listing = httpx.get(library.url + "/api/ingest-jobs", headers=library.headers(library.admin), timeout=10)
    assert [j["id"] for j in listing.json()["data"]] == [job["id"]]
    assert httpx.get(f"{library.url}/api/ingest-jobs/{job['id']}", headers=library.headers(),
                     timeout=10).status_code == 404  # another user of the agency does not follow it


@needs_ocr
def test_a_job_is_cancelled_between_pages_and_keeps_only_whole_files(library, tmp_path):
    scan = scanned_pdf(PAGES * 6, tmp_path / "긴 스캔.pdf").read_bytes()
    started = upload(library, [("files", ("먼저.txt", "먼저 들어가는 문서".encode(), "text/plain")),
                               ("files", ("긴 스캔.pdf", scan, "application/pdf"))], background="true").json()["job"]
    wait_for(library, started["id"], lambda j: "쪽" in (j["current"] or ""))
    cancelled = httpx.post(f"{library.url}/api/ingest-jobs/{started['id']}/cancel",
                           headers=library.headers(library.admin), timeout=10)
    assert cancelled.status_code == 200
    done = wait_for(library, started["id"], lambda j: j["status"] in ("succeeded", "failed", "cancelled"), 60)
    assert done["status"] == "cancelled" and done["files_done"] == 1
    assert documents(library) == ["먼저"]  # the scan was not half-written
    with library.db.session() as session:
        actions = set(session.scalars(select(AuditRecord.action).where(AuditRecord.action.like("documents.%"))))
    assert {"documents.upload_job", "documents.upload_job.cancel", "documents.upload_job.cancelled"} <= actions


@needs_ocr
def test_a_job_stopped_with_its_server_resumes_after_a_restart(tmp_path, database_url, upstream):
    config = {"models": default_models(upstream.base_url)}
    first = launch_platform(tmp_path, database_url, config)
    first.admin = first.new_user_key("librarian", Role.AGENCY_ADMIN)
    with first.db.session() as session:
        first.collection = kc.create(session, "MOIS", "규정").id
    scan = scanned_pdf(PAGES * 6, tmp_path / "스캔.pdf").read_bytes()
    files = [("files", ("하나.txt", "첫 문서 내용".encode(), "text/plain")),
             ("files", ("스캔.pdf", scan, "application/pdf")),
             ("files", ("셋.txt", "세 번째 문서 내용".encode(), "text/plain"))]
    job = upload(first, files, background="true").json()["job"]
    wait_for(first, job["id"], lambda j: j["files_done"] == 1 and "쪽" in (j["current"] or ""))
    stopping = threading.Thread(target=first.server.stop)
    began = time.monotonic()
    stopping.start()
    stopping.join(60)
    assert time.monotonic() - began < 30  # the server stops at the next page, not after the scan
    with first.db.session() as session:
        row = session.get(IngestJob, job["id"])
        assert (row.status, row.files_done) == ("queued", 1)
    first.db.dispose()
    second = launch_platform(tmp_path, database_url, config)
    try:
        second.admin, second.collection = first.admin, first.collection
        done = wait_for(second, job["id"], lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
        assert done["status"] == "succeeded" and [r["name"] for r in done["results"]] == ["하나.txt", "스캔.pdf",
                                                                                         "셋.txt"]
        with second.db.session() as session:
            assert session.scalar(select(func.count()).select_from(Document)) == 3  # nothing twice
    finally:
        second.server.stop()
        second.db.dispose()
