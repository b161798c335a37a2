"""Recognise Korean government-style headings in plain lines.

`3.2.1 데이터 보안 등급`, `제2장 …`, `제3조(목적)`, `Ⅱ. …`, `1. …`, `가. …` — the numbering
civil-service documents use. Returns a depth (1 = top) or 0 for body text.
"""

from __future__ import annotations

import itertools
import re

_PATTERNS = [
    (re.compile(r"^제\s*\d+\s*[편장]\s*\S"), 1),
    (re.compile(r"^[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]\.?\s+\S"), 1),
    (re.compile(r"^제\s*\d+\s*절\s*\S"), 2),
    (re.compile(r"^제\s*\d+\s*조(?:의\d+)?\s*[(（]\S"), 3),
    (re.compile(r"^\d+\.\d+\.\d+\.?\s+\S"), 3),
    (re.compile(r"^\d+\.\d+\.?\s+\S"), 2),
    (_BARE_NUMBER := re.compile(r"^(\d+)\s+[^\d\s.,)]\S*"), 1),
    (re.compile(r"^\d+\.\s+\S"), 2),
]
_MAX_HEADING_CHARS = 60


def heading_level(line: str) -> int:
    text = line.strip()
    if not text or len(text) > _MAX_HEADING_CHARS or text.endswith(("다.", "함", "음.", "임")):
        return 0
    for pattern, level in _PATTERNS:
        if pattern.match(text):
            return level
    return 0


ROW_RUN_LINES = 15  # consecutive numbers this close together are a table's rows


def numbered_rows(lines: list[str]) -> set[int]:
    """Indices of lines that look like `19 행정 문서작성 …` headings but are numbered table rows.

    A bare-number heading (`1 개요`) is followed pages later by the next (`2 추진 배경`); rows of
    an appendix table are numbered n, n+1, n+2 a few lines apart. A candidate next to another
    whose number is one more or one less, within `ROW_RUN_LINES` lines, is a row.
    """
    candidates = []
    for index, line in enumerate(lines):
        text = line.strip()
        if (match := _BARE_NUMBER.match(text)) and heading_level(text) == 1:
            candidates.append((index, int(match.group(1))))
    rows: set[int] = set()
    for (i, n), (j, m) in itertools.pairwise(candidates):
        if m == n + 1 and j - i <= ROW_RUN_LINES:
            rows.update((i, j))
    return rows
