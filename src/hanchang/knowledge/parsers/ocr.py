"""Scanned pages read by optical character recognition: Tesseract's Korean and English models
(Debian's `tesseract-ocr`, `tesseract-ocr-kor`); PDF pages are rendered by PDFium (pypdfium2).
Images (PNG, JPEG, TIFF, multi-page TIFF too) are read here whole.

The `tesseract` command is run directly, one page per process with OMP_THREAD_LIMIT=1 and as
many pages at once as there are cores: its default OpenMP threads thrash on a small machine
(measured on 2 cores: 11.2 s a page with its default, 1.8 s with one thread). pytesseract hands
every call the server's own environment, so it cannot limit the threads of Tesseract alone.

Without the engine a scanned file is reported with what to install, never skipped in silence.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from hanchang.knowledge.parsers.base import Block, DamagedDocument, ParsedDocument, UnsupportedDocument
from hanchang.knowledge.parsers.text import blocks_from_lines

LANGUAGES = ("kor", "eng")
RENDER_DPI = 300  # Tesseract reads Hangul best at about 300 dpi
MAX_PAGES = 500  # a scanned document longer than this is refused rather than read for an hour
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
PAGE_TIMEOUT_S = 300


class OcrUnavailable(UnsupportedDocument):
    pass


def _tesseract(*args: str, image: bytes | None = None) -> str:
    done = subprocess.run(["tesseract", *args], input=image, capture_output=True, timeout=PAGE_TIMEOUT_S,
                          env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {done.returncode}")
    return done.stdout.decode("utf-8", "replace")


@cache
def engine_problem() -> str | None:
    """What is missing for OCR (None when Tesseract with its Korean model is here)."""
    if shutil.which("tesseract") is None:
        return "the tesseract program is not installed"
    try:
        installed = set(_tesseract("--list-langs").split()[1:])  # after "List of available languages …:"
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:  # broken: say so once, not per page
        return f"tesseract does not answer ({type(exc).__name__})"
    missing = [language for language in LANGUAGES if language not in installed]
    return f"tesseract has no model for {', '.join(missing)}" if missing else None


def require_engine(name: str) -> None:
    if problem := engine_problem():
        raise OcrUnavailable(
            f"'{name}'은(는) 스캔 문서라 문자 인식(OCR)이 필요한데, 이 서버에 OCR 엔진이 없습니다. 관리자에게 "
            "tesseract-ocr, tesseract-ocr-kor 패키지 설치를 요청한 뒤 다시 올려 주세요.",
            f"'{name}' is scanned and needs OCR, but {problem}: install Debian's tesseract-ocr and "
            "tesseract-ocr-kor, then upload it again")


def read_image(image, dpi: int | None = None) -> str:
    """The text of one page image (a PIL image)."""
    buffer = io.BytesIO()
    image.convert("L").save(buffer, "PNG")
    # Page segmentation 4 (one column of text of varying sizes): with Tesseract 5.3 and the Korean
    # model, automatic layout (3) drops most Hangul lines of a page (measured: 0.17 vs 0.92 of the
    # characters read on a rendered guideline page); government documents are mostly one column.
    options = ["--psm", "4", *(["--dpi", str(dpi)] if dpi else [])]
    return _tesseract("stdin", "stdout", "-l", "+".join(LANGUAGES), *options, image=buffer.getvalue())


def read_images(images: Iterable[tuple[int, object]], dpi: int | None = None) -> Iterator[tuple[int, str]]:
    """Read pages (number, image) one per core at a time, in page order; only a few rendered
    pages are held at once (a long scan is not rendered whole into memory first)."""
    workers = max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for number, image in images:
            pending.append((number, pool.submit(read_image, image, dpi)))
            if len(pending) >= workers * 2:
                number_done, future = pending.popleft()
                yield number_done, future.result()
        while pending:
            number_done, future = pending.popleft()
            yield number_done, future.result()


def page_blocks(text: str, page: int) -> list[Block]:
    lines = [line.strip() for line in text.splitlines()]
    return [Block(b.kind, b.text, b.level, page=page) for b in blocks_from_lines([ln for ln in lines if ln],
                                                                                 markdown=False)]


def pdf_pages(path: Path, numbers: list[int]) -> Iterator[tuple[int, object]]:
    """The PDF's pages `numbers` (1-based) rendered as images."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(path))
    try:
        for number in numbers:
            page = document[number - 1]
            try:
                yield number, page.render(scale=RENDER_DPI / 72).to_pil()
            finally:
                page.close()
    finally:
        document.close()


def is_image(head: bytes) -> bool:
    return head.startswith(IMAGE_SIGNATURES)


def parse_image(path: Path, name: str | None = None) -> ParsedDocument:
    """A scanned page (or a multi-page TIFF), read by OCR; every page is marked as read by OCR."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    name = name or path.name
    require_engine(name)
    blocks: list[Block] = []
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > MAX_PAGES:
                raise UnsupportedDocument(f"'{name}'은(는) {frames}쪽입니다. {MAX_PAGES}쪽 이하로 나누어 올려 주세요.",
                                          f"'{name}' has {frames} pages; split it ({MAX_PAGES} at most)")
            frames_read = read_images((number, frame.copy())
                                      for number, frame in enumerate(ImageSequence.Iterator(image), 1))
            for number, text in frames_read:
                blocks += page_blocks(text, number)
    except (UnidentifiedImageError, OSError) as exc:
        raise DamagedDocument(f"'{name}' 그림 파일을 열 수 없습니다. 손상되었는지 확인해 주세요.",
                              f"'{name}': not a readable image ({exc})") from exc
    if not blocks:
        raise UnsupportedDocument(f"'{name}'에서 글자를 찾지 못했습니다(문자 인식 결과 없음).",
                                  f"'{name}': OCR found no text")
    return ParsedDocument(title=Path(name).stem, blocks=blocks, parser="ocr", pages=frames,
                          ocr_pages=list(range(1, frames + 1)))
