"""Recognise Korean government-style headings in plain lines.

`3.2.1 데이터 보안 등급`, `제2장 …`, `제3조(목적)`, `Ⅱ. …`, `1. …`, `가. …` — the numbering
civil-service documents use. Returns a depth (1 = top) or 0 for body text.
"""

from __future__ import annotations

import re

_PATTERNS = [
    (re.compile(r"^제\s*\d+\s*[편장]\s*\S"), 1),
    (re.compile(r"^[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]\.?\s+\S"), 1),
    (re.compile(r"^제\s*\d+\s*절\s*\S"), 2),
    (re.compile(r"^제\s*\d+\s*조(?:의\d+)?\s*[(（]\S"), 3),
    (re.compile(r"^\d+\.\d+\.\d+\.?\s+\S"), 3),
    (re.compile(r"^\d+\.\d+\.?\s+\S"), 2),
    (re.compile(r"^\d+\s+[^\d\s.,)]\S*"), 1),
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
