"""Scanned documents: Korean pages rendered from known text (a Korean font, scanner-like noise),
read by Debian's Tesseract, found by search and cited with their page marked as OCR. A server
without the engine reports the file with what to install; the rest of the batch goes in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest
from hanchang_devtools.scans import korean_font, render_page, scanned_image, scanned_pdf

from hanchang.knowledge.parsers import parse
from hanchang.knowledge.parsers.ocr import engine_problem

pytestmark = [
    pytest.mark.skipif(engine_problem() is not None, reason=f"OCR engine: {engine_problem()} (.ci/run installs it)"),
    pytest.mark.skipif(korean_font() is None, reason="no Korean font to render scans (fonts-noto-cjk)"),
]

GRADES = "데이터 보안 등급은 기밀, 민감, 공개의 세 가지로 구분한다."
TRAVEL = "출장 여비는 실비로 정산하며 숙박비는 하루 칠만 원을 넘지 않는다."


def test_a_scanned_pdf_is_read_page_by_page(tmp_path):
    doc = parse(scanned_pdf([GRADES, TRAVEL], tmp_path / "스캔.pdf"))
    assert doc.parser == "pdf+ocr" and doc.ocr_pages == [1, 2] and doc.pages == 2
    by_page = {b.page: b.text for b in doc.blocks}
    assert "보안 등급" in by_page[1] and "출장 여비" in by_page[2] and "실비로 정산" in by_page[2]
    assert "OCR" in doc.warnings[0]


def test_scanned_images_png_jpeg_and_multipage_tiff(tmp_path):
    for suffix in (".png", ".jpg"):
        doc = parse(scanned_image(TRAVEL, tmp_path / f"공문{suffix}"))
        assert doc.parser == "ocr" and "출장 여비" in doc.text and doc.ocr_pages == [1]
    pages = [render_page(GRADES), render_page(TRAVEL)]
    pages[0].save(tmp_path / "묶음.tiff", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    doc = parse(tmp_path / "묶음.tiff")
    assert doc.pages == 2 and doc.ocr_pages == [1, 2]
    assert "보안 등급" in " ".join(b.text for b in doc.blocks if b.page == 1)
    assert "출장 여비" in " ".join(b.text for b in doc.blocks if b.page == 2)


def test_a_text_pdf_with_one_scanned_page_keeps_its_text_layer(tmp_path):
    """Pages with a text layer are read from it; only the scanned page goes to OCR."""
    from pypdf import PdfReader, PdfWriter

    from test_parsers import _pdf

    _pdf(tmp_path / "text.pdf", ["Hanchang annual report"])
    scanned_pdf([TRAVEL], tmp_path / "scan.pdf")
    writer = PdfWriter()
    for part in ("text.pdf", "scan.pdf"):
        for page in PdfReader(tmp_path / part).pages:
            writer.add_page(page)
    with (tmp_path / "mixed.pdf").open("wb") as handle:
        writer.write(handle)
    doc = parse(tmp_path / "mixed.pdf")
    assert doc.ocr_pages == [2] and "Hanchang annual report" in doc.text and "출장 여비" in doc.text


def test_without_the_engine_a_scan_is_reported_not_skipped(tmp_path):
    """A real missing engine: the CLI runs with a PATH that has no tesseract. The scanned file is
    reported with what to install; the text file beside it is ingested."""
    folder = tmp_path / "docs"
    folder.mkdir()
    scanned_pdf([GRADES], folder / "스캔.pdf")
    (folder / "규정.txt").write_text(TRAVEL, encoding="utf-8")
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare), "HANCHANG_HOME": str(tmp_path / "home")}
    env.pop("HANCHANG_DATABASE_URL", None)
    cli = [sys.executable, "-m", "hanchang"]
    assert shutil.which("tesseract", path=env["PATH"]) is None
    subprocess.run([*cli, "setup", "--no-model"], env=env, capture_output=True, text=True)
    done = subprocess.run([*cli, "ingest", "--collection", "scans", "--agency", "DEMO", str(folder)],
                          env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert "tesseract-ocr-kor" in output and "스캔.pdf" in output, output
    assert "규정.txt" in output
    found = subprocess.run([*cli, "search", "--collection", "scans", "--agency", "DEMO", "--top-k", "3", "--json",
                            "숙박비"], env=env, capture_output=True, text=True, timeout=120)
    assert "숙박비" in found.stdout, found.stdout + found.stderr


def test_an_uploaded_scan_is_found_and_cited_with_its_page_marked(platform_factory, upstream, tmp_path):
    from conftest import default_models
    from hanchang.core.principal import Role

    platform = platform_factory({"models": default_models(upstream.base_url)})
    admin = platform.headers(platform.new_user_key("boss", Role.AGENCY_ADMIN))
    made = httpx.post(platform.url + "/api/collections", headers=admin, json={"name": "스캔문서", "grade": "O"},
                      timeout=10)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    first_page = "\n".join([GRADES] * 28)  # a full page: its own passage, so page 2's is cited as page 2
    scan = scanned_pdf([first_page, TRAVEL], tmp_path / "여비규정.pdf").read_bytes()
    broken = b"%PDF-1.4 not really"
    uploaded = httpx.post(f"{platform.url}/api/collections/{cid}/documents", headers=admin, timeout=120,
                          files=[("files", ("여비규정.pdf", scan)), ("files", ("깨진.pdf", broken))])
    assert uploaded.status_code in (200, 207), uploaded.text
    results = {r["name"]: r for r in uploaded.json()["results"]}
    assert results["여비규정.pdf"]["status"] == "ingested" and results["깨진.pdf"]["status"] == "failed"
    found = httpx.get(platform.url + "/api/search", headers=admin, params={"q": "숙박비 정산", "collection": cid},
                      timeout=30).json()["results"]
    assert found[0]["page"] == 2 and found[0]["ocr"] is True and "숙박비" in found[0]["text"], found
    answer = httpx.post(platform.v1 + "/chat/completions", headers=admin, timeout=30, json={
        "model": "internal-a", "collections": [cid], "messages": [{"role": "user", "content": "숙박비 한도는?"}]})
    (citation,) = [c for c in answer.json()["citations"] if "숙박비" in c["text"]]
    assert citation["page"] == 2 and citation["ocr"] is True and citation["source"].endswith("여비규정.pdf")
    assert "숙박비" in str(upstream.behaviour.received[-1]["messages"])
    opened = httpx.get(f"{platform.url}/api/chunks/{citation['chunk_id']}", headers=admin, timeout=10)
    assert opened.status_code == 200 and opened.json()["ocr"] is True and opened.json()["page"] == 2


def test_a_damaged_image_is_a_clear_error(tmp_path):
    from hanchang.knowledge.parsers import DamagedDocument

    (tmp_path / "깨진.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DamagedDocument, match="그림 파일"):
        parse(tmp_path / "깨진.png")
