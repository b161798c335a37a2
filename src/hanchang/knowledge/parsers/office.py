"""PDF (text layer), DOCX, XLSX/CSV and HTML."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from hanchang.knowledge.parsers import ocr
from hanchang.knowledge.parsers.base import (
    Block,
    BlockKind,
    DamagedDocument,
    EncryptedDocument,
    ParsedDocument,
    UnsupportedDocument,
)
from hanchang.knowledge.parsers.headings import heading_level
from hanchang.knowledge.parsers.text import blocks_from_lines, read_text
from hanchang.knowledge.parsers.ziputil import open_zip

MAX_TABLE_ROWS = 20_000


def _row(cells) -> str:
    return "| " + " | ".join("" if c is None else str(c).replace("\n", " ").strip() for c in cells) + " |"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000-\uf8ff\ufffd]")
_WORDLIKE = re.compile(r"[\w가-힣]")


def _readable(text: str) -> bool:
    """Text a person can read: mostly letters, digits, Hangul and ordinary punctuation/space.
    A PDF whose fonts lack a Unicode map extracts as symbols and private-use glyphs instead."""
    visible = [c for c in text if not c.isspace()]
    if len(visible) < 20:
        return True
    return sum(1 for c in visible if _WORDLIKE.match(c)) / len(visible) >= 0.5


def _page_pattern(line: str) -> str:
    """A short line with its numbers blanked ("- 3 -" and "- 4 -" are one footer); longer lines as
    they are, so body lines that differ only in their figures are never taken for a footer."""
    line = line.strip()
    return re.sub(r"\d+", "#", line) if len(line) <= 20 else line


def _running_lines(pages: list[str]) -> set[str]:
    """Headers and footers: the first or last two lines that recur on at least half the pages."""
    texts = [p for p in pages if p.strip()]
    if len(texts) < 3:
        return set()
    seen: dict[str, int] = {}
    for text in texts:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        for line in {_page_pattern(ln) for ln in lines[:2] + lines[-2:]}:
            seen[line] = seen.get(line, 0) + 1
    return {line for line, count in seen.items() if count >= max(3, len(texts) / 2)}


def parse_pdf(path: Path, name: str | None = None) -> ParsedDocument:
    """A PDF's text layer; pages without one (scanned), or a whole PDF whose fonts carry no
    characters, are read by OCR when the engine is here (parsers/ocr.py) and marked as such."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    name = name or path.name
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise EncryptedDocument(f"'{name}'은(는) 암호가 걸린 PDF입니다. 암호를 해제해 올려 주세요.",
                                    f"'{name}' is an encrypted PDF")
        pages = [_CONTROL.sub("", page.extract_text() or "") for page in reader.pages]  # NULs: never text
    except PdfReadError as exc:
        raise DamagedDocument(f"'{name}'을(를) 읽을 수 없습니다. PDF가 손상되었습니다.",
                              f"'{name}': {exc}") from exc
    running = _running_lines(pages)
    lines = {number: [ln for ln in text.splitlines() if _page_pattern(ln) not in running]
             for number, text in enumerate(pages, 1) if text.strip()}
    garbage = bool(lines) and not _readable("".join("".join(found) for found in lines.values()))
    if garbage:  # fonts without a character map: the text layer is noise, read the pages instead
        lines = {}
    scanned = [number for number in range(1, len(pages) + 1) if number not in lines]
    ocr_pages: list[int] = []
    warnings = []
    if scanned and (ocr.engine_problem() is None or not lines):
        if len(scanned) > ocr.MAX_PAGES:
            raise UnsupportedDocument(f"'{name}'의 스캔된 쪽이 {len(scanned)}쪽입니다. {ocr.MAX_PAGES}쪽 이하로 "
                                      "나누어 올려 주세요.", f"'{name}': {len(scanned)} scanned pages; split it")
        ocr.require_engine(name)
        for number, text in ocr.read_images(ocr.pdf_pages(path, scanned, name), dpi=ocr.RENDER_DPI,
                                            total=len(scanned), name=name):
            lines[number] = [ln for ln in text.splitlines() if ln.strip()]
            ocr_pages.append(number)
        warnings.append(f"문자 인식(OCR)으로 읽은 쪽: {_listed(ocr_pages)}쪽 (pages read by OCR: {_listed(ocr_pages)})")
    elif scanned:
        warnings.append(f"글자 층이 없는(스캔된) 쪽은 건너뛰었습니다: {_listed(scanned)}쪽 — 문자 인식(OCR) 엔진"
                        f"(tesseract-ocr, tesseract-ocr-kor)을 설치하면 읽습니다 (scanned pages skipped, no OCR "
                        f"engine: {_listed(scanned)})")
    blocks = [Block(block.kind, block.text, block.level, page=number)
              for number in sorted(lines) for block in blocks_from_lines(lines[number], markdown=False)]
    if not blocks:
        raise UnsupportedDocument(f"'{name}'에서 글자를 찾지 못했습니다(문자 인식 결과도 없음).",
                                  f"'{name}': no text, and OCR found none")
    title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or blocks[0].text
    return ParsedDocument(title=str(title)[:200], blocks=blocks, parser="pdf+ocr" if ocr_pages else "pdf",
                          pages=len(reader.pages), warnings=warnings, ocr_pages=ocr_pages)


def _listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:20])) + (" …" if len(numbers) > 20 else "")


def parse_docx(path: Path, name: str | None = None) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    name = name or path.name
    open_zip(path, name).close()  # zip-bomb guard before python-docx reads it
    try:
        document = docx.Document(str(path))
    except Exception as exc:
        raise DamagedDocument(f"'{name}'을(를) 열 수 없습니다. DOCX 파일이 손상되었습니다.",
                              f"'{name}': {exc}") from exc
    blocks: list[Block] = []
    tables = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            level = int(style.split()[-1]) if style.startswith("Heading") and style.split()[-1].isdigit() \
                else (1 if style == "Title" else heading_level(text))
            blocks.append(Block(BlockKind.HEADING if level else BlockKind.PARAGRAPH, text, level))
        elif isinstance(item, Table):
            tables += 1
            for row in item.rows:
                cells = []
                for cell in row.cells:  # merged cells repeat; keep each once
                    if not cells or cells[-1] != cell.text.strip():
                        cells.append(cell.text.strip())
                if any(cells):
                    blocks.append(Block(BlockKind.TABLE_ROW, _row(cells), table=tables))
    title = (document.core_properties.title or "").strip() or next((b.text for b in blocks), name)
    return ParsedDocument(title=title[:200], blocks=blocks, parser="docx")


def parse_xlsx(path: Path, name: str | None = None) -> ParsedDocument:
    import openpyxl

    name = name or path.name
    open_zip(path, name).close()
    try:
        workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:
        raise DamagedDocument(f"'{name}'을(를) 열 수 없습니다. XLSX 파일이 손상되었습니다.",
                              f"'{name}': {exc}") from exc
    blocks: list[Block] = []
    for number, sheet in enumerate(workbook.worksheets, 1):
        blocks.append(Block(BlockKind.HEADING, f"시트: {sheet.title}", 1))
        for count, values in enumerate(sheet.iter_rows(values_only=True)):
            if count >= MAX_TABLE_ROWS:
                break
            if any(v is not None and str(v).strip() for v in values):
                blocks.append(Block(BlockKind.TABLE_ROW, _row(values), table=number))
    workbook.close()
    return ParsedDocument(title=name, blocks=blocks, parser="xlsx")


def parse_csv(path: Path, name: str | None = None) -> ParsedDocument:
    name = name or path.name
    text = read_text(path, name)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    blocks = [Block(BlockKind.TABLE_ROW, _row(r), table=1)
              for i, r in enumerate(rows) if i < MAX_TABLE_ROWS and any(c.strip() for c in r)]
    return ParsedDocument(title=name, blocks=blocks, parser="csv")


def parse_html(path: Path, name: str | None = None) -> ParsedDocument:
    from bs4 import BeautifulSoup

    name = name or path.name
    soup = BeautifulSoup(read_text(path, name), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer"]):
        tag.decompose()
    blocks: list[Block] = []
    tables = 0
    for element in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "table", "pre"]):
        if element.find_parent("table") is not None and element.name != "table":
            continue
        if element.name == "table":
            tables += 1
            for tr in element.find_all("tr"):
                cells = [c.get_text(" ", strip=True) for c in tr.find_all(["td", "th"])]
                if any(cells):
                    blocks.append(Block(BlockKind.TABLE_ROW, _row(cells), table=tables))
            continue
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name.startswith("h"):
            blocks.append(Block(BlockKind.HEADING, text, int(element.name[1])))
        else:
            blocks.append(Block(BlockKind.PARAGRAPH, text))
    title = soup.title.get_text(strip=True) if soup.title and soup.title.get_text(strip=True) else name
    return ParsedDocument(title=title[:200], blocks=blocks, parser="html")
