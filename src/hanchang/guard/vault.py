"""Typed placeholders for personal data, and (for pseudonymization) their way back.

A `PseudonymVault` lives for one request, in memory only: the same value gets the same
placeholder (`[전화번호1]`), the model sees placeholders, and `restore` puts the real values
back into the answer shown to the user. Nothing here is ever logged or stored.
"""

from __future__ import annotations

import re
from functools import cache

from hanchang.guard.pii import Finding
from hanchang.guard.recognizers import labels_ko


@cache
def _placeholder() -> re.Pattern[str]:
    return re.compile(r"\[(" + "|".join(map(re.escape, labels_ko().values())) + r")(\d+)\]")


class PseudonymVault:
    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._next: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            number = self._next.get(kind, 0) + 1
            self._next[kind] = number
            token = f"[{labels_ko()[kind]}{number}]"
            self._by_value[key] = token
            self._by_placeholder[token] = value
        return self._by_value[key]

    def replace(self, text: str, findings: list[Finding]) -> str:
        """`text` with every finding replaced by its placeholder."""
        parts, cursor = [], 0
        for finding in findings:
            parts.append(text[cursor:finding.start])
            parts.append(self.placeholder(finding.type, finding.value))
            cursor = finding.end
        parts.append(text[cursor:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        """Put real values back where the model repeated a placeholder."""
        if not self._by_placeholder or "[" not in text:
            return text
        return _placeholder().sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)
