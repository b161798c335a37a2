"""Find Korean personal data in text, and mask or pseudonymize it."""

from __future__ import annotations

from dataclasses import dataclass

from hanchang.guard.recognizers import Recognizer, all_recognizers

CONTEXT_WINDOW = 24  # characters before a match searched for context words
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


def _candidates(text: str, recognizers: tuple[Recognizer, ...]) -> list[Finding]:
    found = []
    for recognizer in recognizers:
        for match in recognizer.pattern.finditer(text):
            value = match.group(0).strip()
            start = match.start() + (len(match.group(0)) - len(match.group(0).lstrip()))
            end = start + len(value)
            score = recognizer.base_score
            if recognizer.validate is not None:
                adjustment = recognizer.validate(value)
                if adjustment is None:
                    continue
                score += adjustment
            context = _context_score(recognizer, text, start, end)
            if recognizer.needs_context and not context:
                continue
            found.append(Finding(recognizer.type, start, end, value, min(1.0, score + context)))
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
