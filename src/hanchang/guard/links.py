"""Output link filter: links the model invents are neutralised.

A model can write a convincing but wrong or malicious address, and an answer grounded on 민감
data can carry that data out in a URL a chat client fetches by itself (an image in markdown).
Only links that appeared in the sources or the user's own text pass; others are replaced by a
marker (GOV.UK Chat maps links to tokens for the same reason).

What counts as a link is decided the way a browser decides it: every stretch that could be a
URL — a scheme (`http:` with any slashes, backslashes or none), a protocol-relative `//host` or
`\\\\host`, `www.` — is parsed by a WHATWG URL parser (ada) against a placeholder base, and
whatever then names a host is a link. HTML character references are decoded first, as a
renderer would.
"""

from __future__ import annotations

import html
import re

from ada_url import URL as WhatwgUrl

REMOVED = "(확인되지 않은 링크 삭제됨)"
_TRAILING = ".,;:!?。、"
_BASE = "https://answer.hanchang.invalid/"
_BASE_HOST = "answer.hanchang.invalid"
# Anything a browser could take for a URL: scheme:…, //…, \\…, www.… up to a space or a delimiter.
CANDIDATE = re.compile(
    r"(?:(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*:(?=[^\s:]|$)"  # scheme:  (http:, http:/, http:\\)
    r"|(?<![\w/\\:])[/\\]{2,}(?=[^/\\\s])"  # //host, \\host, \/\/host
    r"|(?<![\w.])www\.)"
    r"[^\s<>\"'`()\[\]{}|^]*",
    re.IGNORECASE,
)


def _parsed(candidate: str, base: str | None) -> WhatwgUrl | None:
    try:
        return WhatwgUrl(candidate, base=base) if base else WhatwgUrl(candidate)
    except ValueError:
        return None


def _key(candidate: str) -> str | None:
    """The link a candidate names, as a comparable key (host + path + query), or None when it
    names no host a client would fetch. Read both as an absolute URL and relative to a page of
    the same scheme (`https:host/x` is absolute on any other page), the foreign host wins."""
    text = candidate.rstrip(_TRAILING)
    if text.lower().startswith("www."):
        text = "http://" + text
    for base in (None, _BASE):
        url = _parsed(text, base)
        if url is not None and url.hostname and url.hostname != _BASE_HOST:
            return (url.host + url.pathname.rstrip("/") + url.search).lower()
    return None


def known_links(*texts: str) -> set[str]:
    found = set()
    for text in texts:
        for source in {text or "", html.unescape(text or "")}:
            for match in CANDIDATE.finditer(source):
                key = _key(match.group(0))
                if key:
                    found.add(key)
    return found


def _neutralise(text: str, allowed: set[str]) -> tuple[str, int]:
    removed = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal removed
        url = match.group(0)
        core = url.rstrip(_TRAILING)
        key = _key(core)
        if key is None or key in allowed:
            return url
        removed += 1
        return REMOVED + url[len(core):]

    return CANDIDATE.sub(swap, text), removed


def neutralise_links(text: str, allowed: set[str]) -> tuple[str, int]:
    """Replace links not in `allowed`; returns the text and how many were removed."""
    out, removed = _neutralise(text, allowed)
    decoded = html.unescape(out)
    if decoded != out:  # a link spelled with character references (&#47;&#47;host) counts too
        again, hidden = _neutralise(decoded, allowed)
        if hidden:
            return again, removed + hidden
    return out, removed
