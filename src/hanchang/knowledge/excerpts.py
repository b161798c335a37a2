"""Fit retrieved passages into a character budget by keeping their sentences that answer best.

When the best passages are longer than the model can read in time, each passage is cut to
its lines and sentences; each is scored by the question's content morphemes it holds (rarer
ones weigh more, as in BM25), with a small preference for higher-ranked passages, and the
best are kept, with the line after each kept one when room remains (an answer often
continues on the next line of a list). Kept sentences stay in document order; a gap between
them is marked with "…". A passage with nothing kept is dropped.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace

from hanchang.knowledge.analysis import KoreanAnalyzer, shared_analyzer
from hanchang.knowledge.search import SearchResult

_UNITS = re.compile(r"[^\n]+?(?:[.!?。](?=\s)|\n|$)")
GAP = " … "
HEADER_CHARS = 30  # "[n] title · section" before each passage
RANK_PREFERENCE = 0.15


@dataclass
class _Unit:
    passage: int
    position: int
    text: str
    score: float = 0.0


def _units(text: str) -> list[str]:
    return [u.strip() for u in _UNITS.findall(text) if u.strip()]


def fit(results: list[SearchResult], question: str, budget_chars: int,
        analyzer: KoreanAnalyzer | None = None) -> list[SearchResult]:
    """The results, cut to their best sentences if together they exceed `budget_chars`."""
    if sum(len(r.text) + HEADER_CHARS for r in results) <= budget_chars:
        return results
    analyzer = analyzer or shared_analyzer()
    units = [_Unit(p, i, text) for p, r in enumerate(results) for i, text in enumerate(_units(r.text))]
    if not units:
        return []
    terms = set(analyzer.morphemes(question))
    unit_terms = [set(m) & terms for m in analyzer.morphemes_many([u.text for u in units])]
    df = {t: sum(t in found for found in unit_terms) for t in terms}
    for unit, found in zip(units, unit_terms, strict=True):
        weight = sum(math.log(1 + len(units) / df[t]) for t in found)
        unit.score = weight * (1 + RANK_PREFERENCE * (len(results) - unit.passage) / len(results))

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

    ranked = sorted((u for u in units if u.score > 0), key=lambda u: -u.score)
    by_place = {(u.passage, u.position): u for u in units}
    for unit in ranked:
        take(unit)
    for unit in ranked:  # then the line after each kept one, best first, while room remains
        if (unit.passage, unit.position) in chosen and (after := by_place.get((unit.passage, unit.position + 1))):
            take(after)
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
