"""One titled table as an XLSX workbook or an HWPX document (the agencies' report formats)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def to_xlsx(title: str, subtitle: str, sheet_title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
            widths: Sequence[int], wrap: Sequence[int] = ()) -> bytes:
    """Title, subtitle, a bold shaded header, then the rows; `wrap` lists columns (0-based) to wrap."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([subtitle])
    sheet.append([])
    sheet.append(list(header))
    for cell in sheet[4]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE6F3")
    for row in rows:
        sheet.append(list(row))
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    for row in sheet.iter_rows(min_row=5):
        for column in wrap:
            row[column].alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def to_hwpx(title: str, subtitle: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    from hwpx import HwpxDocument

    document = HwpxDocument.new()
    title_run = document.styles.ensure_run(bold=True, size=16, font="맑은 고딕")
    first = document.paragraphs[0]
    first.text, first.char_pr_id_ref = title, title_run
    document.add_paragraph(subtitle)
    table_rows = [list(header), *rows]
    table = document.add_table(len(table_rows), len(header))
    for r, row in enumerate(table_rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = "" if value is None else str(value)
    return document.to_bytes()
