"""Find Korean personal data in text, and mask or pseudonymize it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hanchang.guard.normalise import normalise
from hanchang.guard.recognizers import Recognizer, all_recognizers

CONTEXT_WINDOW = 24  # characters before a match searched for context words
NUMERIC = frozenset({"RRN", "FRN", "PHONE", "BRN", "CARD", "ACCOUNT", "DRIVER_LICENSE", "PASSPORT"})
_DIGIT = re.compile(r"\d")
THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    start: int
    end: int
    value: str
    score: float

    def as_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "value": self.value,
                "score": round(self.score, 2)}


def _context_score(recognizer: Recognizer, text: str, start: int, end: int) -> float:
    before = text[max(0, start - CONTEXT_WINDOW):start].lower()
    after = text[end:end + 6].lower()
    if any(word in before or word in after for word in recognizer.context):
        return recognizer.context_boost
    return 0.0


def _something_else(recognizer: Recognizer, text: str, start: int) -> bool:
    """The nearest label before the match says it is not personal data (a 법인등록번호)."""
    if not recognizer.not_after:
        return False
    before = text[max(0, start - CONTEXT_WINDOW):start]
    return any(word in before for word in recognizer.not_after)


def _value_span(recognizer: Recognizer, match: re.Match[str]) -> tuple[int, int]:
    if recognizer.group > 0:
        return match.span(recognizer.group)
    if recognizer.group < 0:  # the first group that matched
        return next(match.span(i) for i in range(1, (match.re.groups or 0) + 1) if match.group(i) is not None)
    raw = match.group(0)
    start = match.start() + (len(raw) - len(raw.lstrip()))
    return start, start + len(raw.strip())


def _candidates(text: str, recognizers: tuple[Recognizer, ...]) -> list[Finding]:
    """Findings in the normalised text, as spans and values of the original."""
    norm = normalise(text)
    found = []
    has_digit = _DIGIT.search(norm.text) is not None
    for recognizer in recognizers:
        if recognizer.hint is not None and not recognizer.hint(norm.text):
            continue
        if recognizer.hint is None and recognizer.type in NUMERIC and not has_digit:
            continue
        for match in recognizer.pattern.finditer(norm.text):
            start, end = _value_span(recognizer, match)
            if end <= start:
                continue
            value = norm.text[start:end]
            score = recognizer.base_score
            if recognizer.validate is not None:
                adjustment = recognizer.validate(value)
                if adjustment is None:
                    continue
                score += adjustment
            if _something_else(recognizer, norm.text, start):
                continue
            context = _context_score(recognizer, norm.text, start, end)
            if recognizer.needs_context and not context:
                continue
            original_start, original_end = norm.span(start, end)
            found.append(Finding(recognizer.type, original_start, original_end, text[original_start:original_end],
                                 min(1.0, score + context)))
    return found


def scan(text: str, recognizers: tuple[Recognizer, ...] | None = None,
         threshold: float = THRESHOLD) -> list[Finding]:
    """Personal data in `text`, left to right, overlaps resolved by score then length."""
    candidates = [f for f in _candidates(text, recognizers or all_recognizers()) if f.score >= threshold]
    candidates.sort(key=lambda f: (-f.score, -(f.end - f.start), f.start))
    chosen: list[Finding] = []
    for finding in candidates:
        if all(finding.end <= c.start or finding.start >= c.end for c in chosen):
            chosen.append(finding)
    return sorted(chosen, key=lambda f: f.start)


def count_by_type(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.type] = counts.get(finding.type, 0) + 1
    return counts
