"""Does a passage support a sentence, and does an answer state numbers no source holds?

Both are judged on Korean morphemes (Kiwi), not by asking a model: a small model cannot judge
itself, and RAG metric libraries prompted in English misjudge Korean. The answer path uses these
to place citation markers and flag invented numbers; the evaluation harness scores with the same
code, so what it measures is what users get.

- `SupportIndex(passages)` holds each passage's content morphemes; `best(sentence)` names the
  passage whose morphemes cover most of the sentence's, and how much (0–1).
- `numbers(text)` reads the numbers a text states (`1,000`, `79m`, `14.5%`, `1만여 개`, `'22.10.15`)
  as values; `invented(answer, sources)` lists those of an answer found in no source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hanchang.knowledge.analysis import STOP_FORMS, KoreanAnalyzer, shared_analyzer

SUPPORTED = 0.5  # a sentence is supported when a passage holds at least half its content morphemes
MARKER = re.compile(r"\s*\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_UNIT_WORDS = "%|km|kg|m|원|명|개월|개|건|배|종|곳|초|분|시간|일|년|월|대|회|차|GB|TB"  # shown with the number
_NUMBER = re.compile(r"(?<![\w.])['’]?(\d{1,3}(?:,\d{3})+|\d+)((?:\.\d+)*)\s*(조|억|만|천)?"
                     rf"(?:{_UNIT_WORDS})?")
_UNITS = {"천": 1e3, "만": 1e4, "억": 1e8, "조": 1e12}
# Numerals written as words; an answer writing "3" where the source says "세" invents nothing.
_WORDS = {1: ("한", "하나", "일"), 2: ("두", "둘", "이"), 3: ("세", "셋", "삼"), 4: ("네", "넷", "사"),
          5: ("다섯", "오"), 6: ("여섯", "육"), 7: ("일곱", "칠"), 8: ("여덟", "팔"), 9: ("아홉", "구"),
          10: ("열", "십")}


def sentences(text: str) -> list[str]:
    """An answer's sentences and list items, in order (citation markers kept)."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def strip_markers(text: str) -> str:
    return MARKER.sub("", text)


def _terms(analyzer: KoreanAnalyzer, texts: list[str]) -> list[set[str]]:
    return [{m for m in found if m not in STOP_FORMS} for found in analyzer.morphemes_many(texts)]


@dataclass(frozen=True)
class Support:
    passage: int  # 0-based position of the best passage (-1: none)
    score: float  # share of the sentence's content morphemes that passage holds

    @property
    def supported(self) -> bool:
        return self.passage >= 0 and self.score >= SUPPORTED


class SupportIndex:
    """The content morphemes of some passages, to ask which one supports a sentence."""

    def __init__(self, passages: list[str], analyzer: KoreanAnalyzer | None = None):
        self.analyzer = analyzer or shared_analyzer()
        self.passages = passages
        self.terms = _terms(self.analyzer, passages) if passages else []

    def of(self, sentence: str, passage: int) -> float:
        """How much of `sentence` passage number `passage` (0-based) holds."""
        own = _terms(self.analyzer, [strip_markers(sentence)])[0]
        if not own or not 0 <= passage < len(self.terms):
            return 0.0
        return len(own & self.terms[passage]) / len(own)

    def best_many(self, texts: list[str]) -> list[Support]:
        found = _terms(self.analyzer, [strip_markers(t) for t in texts]) if texts else []
        results = []
        for own in found:
            if not own or not self.terms:
                results.append(Support(-1, 0.0))
                continue
            scores = [len(own & terms) / len(own) for terms in self.terms]
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
            results.append(Support(best, scores[best]))
        return results

    def best(self, sentence: str) -> Support:
        return self.best_many([sentence])[0]


# -- numbers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    text: str  # as written
    value: float | None  # None for a dotted date or version (22.10.15): compared as written
    digits: str  # the digits and dots as written, commas dropped


def numbers(text: str) -> list[Number]:
    found = []
    for match in _NUMBER.finditer(strip_markers(text)):
        whole, dotted, unit = match.group(1).replace(",", ""), match.group(2), match.group(3)
        digits = whole + dotted
        if dotted.count(".") > 1:  # a date or a section number
            found.append(Number(match.group(0).strip(), None, digits))
            continue
        value = float(digits) * (_UNITS[unit] if unit else 1)
        found.append(Number(match.group(0).strip(), value, digits))
    return found


def _said_in_words(value: float, text: str) -> bool:
    words = _WORDS.get(int(value)) if value == int(value) else None
    return bool(words) and any(re.search(rf"(?<![가-힣]){w}\s*(?:가지|개|명|번|차|단계|곳|종|건|대|년|월|일|회)", text)
                               for w in words)


def invented(answer: str, sources: list[str]) -> list[str]:
    """Numbers the answer states that none of `sources` (passages, the question) holds."""
    joined = "\n".join(sources)
    written = numbers(joined)
    values = {n.value for n in written if n.value is not None}  # 10,000 and 1만 are one value
    dotted = {n.digits for n in written}
    missing = []
    for number in numbers(answer):
        if number.value is not None and (number.value in values or _said_in_words(number.value, joined)):
            continue
        if number.value is None and number.digits in dotted:
            continue
        missing.append(number.text)
    return list(dict.fromkeys(missing))
