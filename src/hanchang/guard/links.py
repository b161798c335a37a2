"""Output link filter: links the model invents are neutralised.

A model can write a convincing but wrong or malicious address. Only links that appeared in
the sources or the user's own text pass; others are replaced by a marker (GOV.UK Chat maps
links to tokens for the same reason).
"""

from __future__ import annotations

import re

URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
REMOVED = "(확인되지 않은 링크 삭제됨)"
_TRAILING = ".,;:!?。、"


def _normal(url: str) -> str:
    return url.rstrip(_TRAILING).rstrip("/").lower().removeprefix("http://").removeprefix("https://")


def known_links(*texts: str) -> set[str]:
    return {_normal(m.group(0)) for text in texts for m in URL.finditer(text or "")}


def neutralise_links(text: str, allowed: set[str]) -> tuple[str, int]:
    """Replace links not in `allowed`; returns the text and how many were removed."""
    removed = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal removed
        url = match.group(0)
        core = url.rstrip(_TRAILING)
        if _normal(core) in allowed:
            return url
        removed += 1
        return REMOVED + url[len(core):]

    return URL.sub(swap, text), removed
