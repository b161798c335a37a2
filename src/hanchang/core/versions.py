"""Which version of a document is in force on a day: the rule, once.

A version is in force from its effective date (`valid_from`, a date ordinal; 0 = always)
until the next version's (`valid_to`, exclusive; `OPEN_END` = still in force). The functions
take plain ints or numpy arrays alike, so an index filters a whole column at once.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

OPEN_END = date.max.toordinal()

T = TypeVar("T")


def day_number(day: date | None = None) -> int:
    """The date ordinal of `day` (today when None)."""
    return (day or date.today()).toordinal()


def in_force(valid_from: T, valid_to: T, day: int) -> T:
    """True where the version is in force on `day` (an ordinal from `day_number`)."""
    return (valid_from <= day) & (day < valid_to)  # type: ignore[operator]


def superseded(valid_to: int, day: int) -> bool:
    """A later version has taken effect by `day`."""
    return day >= valid_to


def version_validity(versions) -> dict[int, tuple[int, int]]:
    """Each version's (valid_from, valid_to), from rows of (id, document_id, effective_from) in
    version order: a version is in force from its date until the next version's date."""
    out: dict[int, tuple[int, int]] = {}
    by_document: dict[int, list] = {}
    for version in versions:
        by_document.setdefault(version.document_id, []).append(version)
    for chain in by_document.values():
        for current, following in zip(chain, [*chain[1:], None], strict=True):
            start = current.effective_from.toordinal() if current.effective_from else 0
            end = following.effective_from.toordinal() if following and following.effective_from \
                else (start if following else OPEN_END)
            out[current.id] = (start, max(start, end) if following else OPEN_END)
    return out

