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
