"""Fit retrieved passages into a character budget by keeping their sentences that answer best.

When the best passages are longer than the model can read in time, each passage is cut to its
logical lines and sentences (PDF-wrapped lines rejoined). Lines are picked greedily by the
question's content morphemes they hold — rarer ones weigh more, as in BM25, earlier passages
more — and a term already covered by a kept line counts half, so the next pick brings the
question's other terms (a sentence naming the event, then the one giving its numbers). A short
hit (a heading, a table label) brings the lines around it, since in government documents the
answer sits in the item under the heading. Kept lines stay in document order; a gap between them
is marked with "…". A passage with nothing kept is dropped.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace

from hanchang.knowledge.analysis import KoreanAnalyzer, shared_analyzer, with_pairs
from hanchang.knowledge.search import SearchResult

_SENTENCES = re.compile(r".+?(?:[.!?。](?=\s)|$)")
# A line that starts a new item: bullets, numbering, table and figure captions.
_BULLET = re.compile(r"^(?:[●○■□▪◆◈◇※\-–·•►▶>✓‣◦①-⑳❶-❿]|\d+[.)]|[가-하][.)]|\(\d+\)|표\s*\d|그림\s*\d|\d+\.\d)")
# A line that ends a sentence in Korean official style (…다. …함 …음 …임 …됨) or with punctuation.
_ENDED = re.compile(r"(?:[.!?。:]|[다함음임됨요][.]?|\))\s*$")
# A bullet a parser ran into the previous line ("… 한계가 있음 ② 파인튜닝된 모델") starts a unit of its own.
_INLINE_BULLET = re.compile(r"\s+(?=[●○■□◦‣①-⑳❶-❿]\s?\S)")
GAP = " … "
HEADER_CHARS = 55  # "[n] title · section" before each passage (title ≤ 30, section ≤ 15)
RANK_PREFERENCE = 1.0  # the first passage's hits weigh up to twice the last one's
K1, B = 1.2, 0.3  # BM25's; a low B: a long line is not much worse than a short one
COVERED = 0.5  # a question term already covered by a kept line counts half: the next pick covers others
MAX_JOINED = 200  # a wrapped sentence rejoins up to this; longer runs are table rows, kept apart
SHORT_LINE = 60  # characters: a hit this short is a heading or label; its answer follows
NEIGHBOURS = (0, 1, -1, 2)  # the hit itself, then the lines after and before it


@dataclass
class _Unit:
    passage: int
    position: int
    text: str


def sentence_units(text: str) -> list[str]:
    """Logical lines: a bullet or sentence, rejoined when a PDF wrapped it over several lines."""
    units: list[str] = []
    for line in (ln.strip() for ln in text.split("\n")):
        if not line:
            continue
        if units and not _BULLET.match(line) and not _ENDED.search(units[-1]) \
                and len(units[-1]) + len(line) <= MAX_JOINED:
            units[-1] += " " + line
        else:
            units.append(line)
    return [s.strip() for unit in units for piece in _INLINE_BULLET.split(unit)
            for s in _SENTENCES.findall(piece) if s.strip()]


def fit(results: list[SearchResult], question: str, budget_chars: int,
        analyzer: KoreanAnalyzer | None = None) -> list[SearchResult]:
    """The results, cut to their best sentences if together they exceed `budget_chars`."""
    if sum(len(r.text) + HEADER_CHARS for r in results) <= budget_chars:
        return results
    analyzer = analyzer or shared_analyzer()
    units = [_Unit(p, i, text) for p, r in enumerate(results) for i, text in enumerate(sentence_units(r.text))]
    if not units:
        return []
    terms = set(with_pairs(analyzer.morphemes(question)))
    unit_terms = [set(with_pairs(m)) & terms for m in analyzer.morphemes_many([u.text for u in units])]
    df = {t: sum(t in found for found in unit_terms) for t in terms}
    idf = {t: math.log(1 + len(units) / df[t]) for t in terms if df[t]}
    average = sum(len(u.text) for u in units) / len(units)
    factor = {}
    for unit in units:
        # BM25's weight for a term found once, in a unit of this length; earlier passages first.
        saturation = (K1 + 1) / (1 + K1 * (1 - B + B * len(unit.text) / average))
        factor[id(unit)] = saturation * (1 + RANK_PREFERENCE * (len(results) - unit.passage) / len(results))

    chosen: set[tuple[int, int]] = set()
    used = 0
    used_passages: set[int] = set()

    def take(unit: _Unit) -> bool:
        nonlocal used
        cost = len(unit.text) + len(GAP) + (0 if unit.passage in used_passages else HEADER_CHARS)
        if (unit.passage, unit.position) in chosen or used + cost > budget_chars:
            return False
        chosen.add((unit.passage, unit.position))
        used_passages.add(unit.passage)
        used += cost
        return True

    by_place = {(u.passage, u.position): u for u in units}
    found_in = {id(u): f for u, f in zip(units, unit_terms, strict=True)}
    candidates = [u for u in units if found_in[id(u)]]
    covered: set[str] = set()

    def gain(unit: _Unit) -> float:  # terms not yet covered by what was kept count fully
        return factor[id(unit)] * sum(idf[t] * (COVERED if t in covered else 1.0) for t in found_in[id(unit)])

    while candidates:
        best = max(candidates, key=gain)
        candidates.remove(best)
        for offset in NEIGHBOURS if len(best.text) < SHORT_LINE else (0,):  # a heading's answer follows it
            if (near := by_place.get((best.passage, best.position + offset))) is not None:
                take(near)
        if (best.passage, best.position) in chosen:
            covered |= found_in[id(best)]
    return _assemble(results, units, chosen)


def _assemble(results: list[SearchResult], units: list[_Unit], chosen: set[tuple[int, int]]) -> list[SearchResult]:
    fitted = []
    for p, result in enumerate(results):
        kept = [u for u in units if u.passage == p and (p, u.position) in chosen]
        if not kept:
            continue
        parts = [kept[0].text]
        for previous, unit in itertools.pairwise(kept):
            parts.append(("\n" if unit.position == previous.position + 1 else GAP) + unit.text)
        fitted.append(replace(result, text="".join(parts)))
    return fitted
