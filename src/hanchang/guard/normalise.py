"""Text as the recognizers read it, with a map back to the original characters.

People write numbers in many ways that mean the same digits: full-width digits (０１０),
Hangul numerals (공일공-일이삼사-오육칠팔), dashes of every kind (‐ ‑ – — −), a middle dot.
`normalise` rewrites these to ASCII digits, "-" and "." character by character (NFKC where it
maps one character to one), and keeps for every character of the result the position of the
character it came from, so a finding is masked in the original text exactly where it stands.
Separators between digit groups (spaces, dots, slashes, table bars, line breaks) are left in
place: the recognizers' patterns accept them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u30fc"), "-")
_DOTS = dict.fromkeys(map(ord, "\u00b7\u318d\u2027\u30fb\uff65\u2024"), ".")
_SIMPLE = {**_DASHES, **_DOTS}
HANGUL_DIGITS = {"영": "0", "공": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5", "육": "6",
                 "륙": "6", "칠": "7", "팔": "8", "구": "9"}
# A run of Hangul numerals long enough to be a number someone spelled out (a phone number has at
# least nine digits): a word like 일이 or 사이 never is.
_HANGUL_RUN = re.compile(r"[영공일이삼사오육륙칠팔구](?:[ \-.]{0,2}[영공일이삼사오육륙칠팔구]){6,}")
_NEEDS_WORK = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\u00b7\u318d\u2027\u30fb\u2024\uff01-\uff5e\u3000"
                         r"\uff65\u30fc]|[영공일이삼사오육륙칠팔구]{3}")


@dataclass(frozen=True, slots=True)
class Normalised:
    text: str
    origin: list[int] | None  # origin[i]: the original position of text[i]; None: the same text

    def span(self, start: int, end: int) -> tuple[int, int]:
        """A span of the normalised text as a span of the original."""
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def normalise(text: str) -> Normalised:
    if text.isascii() or not _NEEDS_WORK.search(text):
        return Normalised(text, None)  # the common case: nothing to rewrite, no map to keep
    out: list[str] = []
    origin: list[int] = []
    for position, ch in enumerate(text):
        mapped = _SIMPLE.get(ord(ch))
        if mapped is None:
            folded = unicodedata.normalize("NFKC", ch)
            mapped = folded if len(folded) == 1 else ch  # one character for one: offsets stay exact
        out.append(mapped)
        origin.append(position)
    result = "".join(out)
    if _HANGUL_RUN.search(result):
        chars = list(result)
        for run in _HANGUL_RUN.finditer(result):
            for i in range(run.start(), run.end()):
                chars[i] = HANGUL_DIGITS.get(chars[i], chars[i])
        result = "".join(chars)
    return Normalised(result, origin)
