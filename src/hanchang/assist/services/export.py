"""Write a draft as a file that opens in the tools civil servants use: DOCX, HWPX or HWP.

A draft is read once into blocks (heading, bullet, paragraph); each writer lays the same
blocks out in its format. HWPX and HWP are written by python-hwpx; government 개조식 symbols
(□, ○, -) stay in the text, as civil servants type them, instead of automatic numbering.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import docx
from docx.shared import Pt

BlockKind = Literal["heading", "bullet", "paragraph"]
_HEADING = re.compile(r"^(#{1,3}\s+|□\s*|[0-9]+\.\s+|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]\.\s*)")
_BULLETS = ("-", "○", "◦", "•", "*", "ㅇ", "·")
_MARKDOWN_EMPHASIS = re.compile(r"\*\*(.+?)\*\*")
FONT = "맑은 고딕"


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    depth: int = 0  # leading spaces / 2, for nested 개조식 lines


def blocks(text: str) -> list[Block]:
    """Read a model-written draft into blocks; markdown markers are dropped, 개조식 symbols kept."""
    found = []
    for raw in text.splitlines():
        line = _MARKDOWN_EMPHASIS.sub(r"\1", raw.rstrip())
        stripped = line.strip()
        if not stripped or set(stripped) <= {"-", "=", "*", "_"}:
            continue
        depth = min((len(line) - len(line.lstrip())) // 2, 4)
        if _HEADING.match(stripped) and len(stripped) <= 60:
            found.append(Block("heading", stripped.lstrip("#").strip()))
        elif stripped.startswith(_BULLETS):
            found.append(Block("bullet", stripped, depth))
        else:
            found.append(Block("paragraph", stripped, depth))
    return found


def to_docx(title: str, text: str) -> bytes:
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(11)
    document.add_heading(title, level=1)
    for block in blocks(text):
        if block.kind == "heading":
            document.add_heading(block.text, level=2)
        elif block.kind == "bullet":
            body = block.text.lstrip("".join(_BULLETS)).strip()
            document.add_paragraph(body, style="List Bullet 2" if block.depth else "List Bullet")
        else:
            document.add_paragraph(block.text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _hwp_document(title: str, text: str):
    from hwpx import HwpxDocument

    document = HwpxDocument.new()
    title_run = document.styles.ensure_run(bold=True, size=16, font=FONT)
    heading_run = document.styles.ensure_run(bold=True, size=13, font=FONT)
    body_run = document.styles.ensure_run(size=11, font=FONT)
    # A new document holds one empty paragraph carrying the page settings: the title goes there.
    first = document.paragraphs[0]
    first.text, first.char_pr_id_ref = title, title_run
    for block in blocks(text):
        run = heading_run if block.kind == "heading" else body_run
        indent = " " * (block.depth * 2 + (1 if block.kind == "bullet" else 0))
        document.add_paragraph(indent + block.text, char_pr_id_ref=run, inherit_style=False)
    return document


def to_hwpx(title: str, text: str) -> bytes:
    return _hwp_document(title, text).to_bytes()


def to_hwp(title: str, text: str) -> bytes:
    """HWP 5 (the older binary format some agencies' systems still require)."""
    return _hwp_document(title, text).to_bytes(format="hwp")


@dataclass(frozen=True)
class ExportFormat:
    write: Callable[[str, str], bytes]
    media_type: str


EXPORT_FORMATS = {
    "docx": ExportFormat(to_docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "hwpx": ExportFormat(to_hwpx, "application/hwp+zip"),
    "hwp": ExportFormat(to_hwp, "application/x-hwp"),
}
