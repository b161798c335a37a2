"""Scanned pages read by optical character recognition: Tesseract's Korean and English models
(Debian's `tesseract-ocr`, `tesseract-ocr-kor`) through pytesseract; PDF pages are rendered by
PDFium (pypdfium2). Images (PNG, JPEG, TIFF, multi-page TIFF too) are read here whole.

Without the engine a scanned file is reported with what to install, never skipped in silence.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from hanchang.knowledge.parsers.base import Block, DamagedDocument, ParsedDocument, UnsupportedDocument
from hanchang.knowledge.parsers.text import blocks_from_lines

LANGUAGES = ("kor", "eng")
RENDER_DPI = 300  # Tesseract reads Hangul best at about 300 dpi
MAX_PAGES = 500  # a scanned document longer than this is refused rather than read for an hour
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")


class OcrUnavailable(UnsupportedDocument):
    pass


@cache
def engine_problem() -> str | None:
    """What is missing for OCR (None when Tesseract with its Korean model is here)."""
    if shutil.which("tesseract") is None:
        return "the tesseract program is not installed"
    import pytesseract

    try:
        installed = set(pytesseract.get_languages(config=""))
    except Exception as exc:  # a broken installation: say so rather than fail on every page
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


def read_image(image) -> str:
    """The text of one page image (a PIL image)."""
    import pytesseract

    # Page segmentation 4 (one column of text of varying sizes): with Tesseract 5.3 and the Korean
    # model, automatic layout (3) drops most Hangul lines of a page (measured: 0.17 vs 0.92 of the
    # characters read on a rendered guideline page); government documents are mostly one column.
    return pytesseract.image_to_string(image.convert("L"), lang="+".join(LANGUAGES), config="--psm 4")


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
            for number, frame in enumerate(ImageSequence.Iterator(image), 1):
                blocks += page_blocks(read_image(frame), number)
    except (UnidentifiedImageError, OSError) as exc:
        raise DamagedDocument(f"'{name}' 그림 파일을 열 수 없습니다. 손상되었는지 확인해 주세요.",
                              f"'{name}': not a readable image ({exc})") from exc
    if not blocks:
        raise UnsupportedDocument(f"'{name}'에서 글자를 찾지 못했습니다(문자 인식 결과 없음).",
                                  f"'{name}': OCR found no text")
    return ParsedDocument(title=Path(name).stem, blocks=blocks, parser="ocr", pages=frames,
                          ocr_pages=list(range(1, frames + 1)))
