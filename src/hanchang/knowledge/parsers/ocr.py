"""Scanned pages read by optical character recognition: Tesseract's Korean and English models
(Debian's `tesseract-ocr`, `tesseract-ocr-kor`); PDF pages are rendered by PDFium (pypdfium2).
Images (PNG, JPEG, TIFF, multi-page TIFF too) are read here whole.

The `tesseract` command is run directly, one page per process with OMP_THREAD_LIMIT=1 and as
many pages at once as there are cores: its default OpenMP threads thrash on a small machine
(measured on 2 cores: 11.2 s a page with its default, 1.8 s with one thread). pytesseract hands
every call the server's own environment, so it cannot limit the threads of Tesseract alone.

Without the engine a scanned file is reported with what to install, never skipped in silence.

A hostile file cannot make the server render gigapixels or run Tesseract without end: every
page's size is read before anything is rendered, a page over MAX_PAGE_PIXELS is rendered at a
lower resolution (or refused when even that is too large), a document over MAX_DOCUMENT_PIXELS
is refused, and each Tesseract process runs with a memory limit (`prlimit`) and a time limit.
Each failure is a clear error for that one file. A page hook (`page_hook`) lets a background
job report progress page by page and stop between pages.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from functools import cache
from pathlib import Path

from hanchang.knowledge.parsers.base import Block, DamagedDocument, ParsedDocument, UnsupportedDocument
from hanchang.knowledge.parsers.text import blocks_from_lines

LANGUAGES = ("kor", "eng")
RENDER_DPI = 300  # Tesseract reads Hangul best at about 300 dpi
MAX_PAGES = 500  # a scanned document longer than this is refused rather than read for an hour
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
PAGE_TIMEOUT_S = 120  # one page read by Tesseract; longer is a hostile or broken image
MAX_PAGE_PIXELS = 40_000_000  # A4 at 300 dpi is 8.7 million, A3 17.4; larger pages are read at lower dpi
MIN_RENDER_DPI = 100  # below this Hangul is unreadable: a page still too large is refused
MAX_DOCUMENT_PIXELS = 4_000_000_000  # about 460 A4 pages at 300 dpi
TESSERACT_MEMORY_BYTES = 1_500_000_000
# Called after each page read by OCR with (pages done, pages in all); it may raise to stop.
page_hook: ContextVar[Callable[[int, int], None] | None] = ContextVar("ocr_page_hook", default=None)


class OcrUnavailable(UnsupportedDocument):
    pass


class PageTooLarge(UnsupportedDocument):
    pass


@cache
def _limit_prefix() -> tuple[str, ...]:
    """`prlimit` (util-linux) caps Tesseract's memory, where the machine has it."""
    found = shutil.which("prlimit")
    return (found, f"--as={TESSERACT_MEMORY_BYTES}", "--") if found else ()


def _tesseract(*args: str, image: bytes | None = None) -> str:
    done = subprocess.run([*_limit_prefix(), "tesseract", *args], input=image, capture_output=True,
                          timeout=PAGE_TIMEOUT_S, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
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


def _read_page(name: str, number: int, image, dpi: int | None) -> str:
    try:
        return read_image(image, dpi)
    except subprocess.TimeoutExpired:
        raise UnsupportedDocument(f"'{name}'의 {number}쪽을 {PAGE_TIMEOUT_S}초 안에 읽지 못했습니다. 그 쪽을 "
                                  "확인해 주세요.",
                                  f"'{name}': page {number} was not read within {PAGE_TIMEOUT_S} s") from None
    except (RuntimeError, OSError) as exc:
        raise UnsupportedDocument(f"'{name}'의 {number}쪽을 문자 인식하지 못했습니다(메모리 또는 이미지 문제).",
                                  f"'{name}': OCR failed on page {number} ({str(exc)[-200:]})") from None


def read_images(images: Iterable[tuple[int, object]], dpi: int | None = None, *, total: int = 0,
                name: str = "") -> Iterator[tuple[int, str]]:
    """Read pages (number, image) one per core at a time, in page order; only a few rendered
    pages are held at once (a long scan is not rendered whole into memory first). The page hook
    hears of each page read, and may stop the reading between pages."""
    workers = max(1, os.cpu_count() or 1)
    hook = page_hook.get()
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()

        def finished() -> tuple[int, str]:
            nonlocal done
            number_done, future = pending.popleft()
            text = future.result()
            done += 1
            if hook is not None:
                hook(done, total)
            return number_done, text
        try:
            for number, image in images:
                pending.append((number, pool.submit(copy_context().run, _read_page, name, number, image, dpi)))
                if len(pending) >= workers * 2:
                    yield finished()
            while pending:
                yield finished()
        finally:
            for _, future in pending:
                future.cancel()


def page_blocks(text: str, page: int) -> list[Block]:
    lines = [line.strip() for line in text.splitlines()]
    return [Block(b.kind, b.text, b.level, page=page) for b in blocks_from_lines([ln for ln in lines if ln],
                                                                                 markdown=False)]


def _render_scale(name: str, number: int, width_pt: float, height_pt: float) -> float:
    """Points to pixels at RENDER_DPI, lowered so the page stays within MAX_PAGE_PIXELS."""
    scale = RENDER_DPI / 72
    pixels = width_pt * scale * height_pt * scale
    if pixels > MAX_PAGE_PIXELS:
        scale *= (MAX_PAGE_PIXELS / pixels) ** 0.5
    if scale < MIN_RENDER_DPI / 72 or width_pt <= 0 or height_pt <= 0:
        inches = f"{width_pt / 72:.0f}×{height_pt / 72:.0f}"
        raise PageTooLarge(f"'{name}'의 {number}쪽은 크기가 비정상적으로 큽니다({inches}인치). "
                           "쪽 크기를 확인해 다시 저장해 주세요.",
                           f"'{name}': page {number} is {width_pt:.0f}×{height_pt:.0f} pt, too large to render")
    return scale


def pdf_pages(path: Path, numbers: list[int], name: str = "") -> Iterator[tuple[int, object]]:
    """The PDF's pages `numbers` (1-based) rendered as images; every page's size is checked
    before any is rendered (per page and for the document)."""
    import pypdfium2

    name = name or path.name
    document = pypdfium2.PdfDocument(str(path))
    try:
        scales, total = {}, 0.0
        for number in numbers:
            width, height = document.get_page_size(number - 1)
            scales[number] = _render_scale(name, number, width, height)
            total += width * height * scales[number] ** 2
        if total > MAX_DOCUMENT_PIXELS:
            raise PageTooLarge(f"'{name}'의 스캔된 쪽을 모두 그리면 너무 큽니다. 문서를 나누어 올려 주세요.",
                               f"'{name}': {total / 1e9:.1f} gigapixels to render, over "
                               f"{MAX_DOCUMENT_PIXELS / 1e9:.0f}; split it")
        for number in numbers:
            page = document[number - 1]
            try:
                yield number, page.render(scale=scales[number]).to_pil()
            finally:
                page.close()
    finally:
        document.close()


def _checked_frame(name: str, number: int, frame):
    if frame.width * frame.height > MAX_PAGE_PIXELS:
        raise PageTooLarge(f"'{name}'의 {number}쪽 그림이 너무 큽니다. 해상도를 낮춰 주세요.",
                           f"'{name}': frame {number} is {frame.width}×{frame.height} pixels")
    return frame.copy()


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
            if image.width * image.height > MAX_PAGE_PIXELS:
                raise PageTooLarge(f"'{name}' 그림이 너무 큽니다({image.width}×{image.height}). 해상도를 낮춰 주세요.",
                                   f"'{name}': {image.width}×{image.height} pixels, over {MAX_PAGE_PIXELS}")
            frames_read = read_images(((number, _checked_frame(name, number, frame))
                                       for number, frame in enumerate(ImageSequence.Iterator(image), 1)),
                                      total=frames, name=name)
            for number, text in frames_read:
                blocks += page_blocks(text, number)
    except Image.DecompressionBombError as exc:
        raise PageTooLarge(f"'{name}' 그림이 너무 큽니다. 해상도를 낮춰 주세요.", f"'{name}': {exc}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DamagedDocument(f"'{name}' 그림 파일을 열 수 없습니다. 손상되었는지 확인해 주세요.",
                              f"'{name}': not a readable image ({exc})") from exc
    if not blocks:
        raise UnsupportedDocument(f"'{name}'에서 글자를 찾지 못했습니다(문자 인식 결과 없음).",
                                  f"'{name}': OCR found no text")
    return ParsedDocument(title=Path(name).stem, blocks=blocks, parser="ocr", pages=frames,
                          ocr_pages=list(range(1, frames + 1)))
