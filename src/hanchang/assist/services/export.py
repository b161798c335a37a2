"""Write a draft as a DOCX file that opens in the tools civil servants use."""

from __future__ import annotations

import io
import re

import docx
from docx.shared import Pt

_HEADING = re.compile(r"^(#{1,3}\s+|□\s*|[0-9]+\.\s+|[ⅠⅡⅢⅣⅤ]\.\s*)")


def to_docx(title: str, text: str) -> bytes:
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = "맑은 고딕"
    style.font.size = Pt(11)
    document.add_heading(title, level=1)
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if _HEADING.match(line.strip()) and len(line.strip()) <= 60:
            document.add_heading(line.strip().lstrip("#").strip(), level=2)
        elif line.strip().startswith(("-", "○", "◦", "•", "*")):
            document.add_paragraph(line.strip().lstrip("-○◦•*").strip(), style="List Bullet")
        else:
            document.add_paragraph(line.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
