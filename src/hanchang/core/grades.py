"""Data grades of the public-sector guideline (3.2.1): 공개 O < 민감 S < 기밀 C."""

from __future__ import annotations

from enum import Enum


class Grade(str, Enum):
    OPEN = "O"
    SENSITIVE = "S"
    CLASSIFIED = "C"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def korean(self) -> str:
        return _KOREAN[self]

    # Every comparison is defined here: str's own (alphabetical: C < O < S) must never apply.
    def __lt__(self, other: object) -> bool:
        return self.rank < _rank_of(other)

    def __le__(self, other: object) -> bool:
        return self.rank <= _rank_of(other)

    def __gt__(self, other: object) -> bool:
        return self.rank > _rank_of(other)

    def __ge__(self, other: object) -> bool:
        return self.rank >= _rank_of(other)

    __hash__ = Enum.__hash__

    @classmethod
    def parse(cls, value: str | Grade) -> Grade:
        """Accept 'O'/'S'/'C' in any case, or the Korean names."""
        if isinstance(value, Grade):
            return value
        text = str(value).strip()
        for grade in cls:
            if text.upper() == grade.value or text == grade.korean:
                return grade
        raise ValueError(f"unknown data grade {value!r}: use O (공개), S (민감) or C (기밀)")


_RANK = {Grade.OPEN: 0, Grade.SENSITIVE: 1, Grade.CLASSIFIED: 2}
_KOREAN = {Grade.OPEN: "공개", Grade.SENSITIVE: "민감", Grade.CLASSIFIED: "기밀"}


def _rank_of(other: object) -> int:
    if not isinstance(other, Grade):
        raise TypeError(f"cannot compare a Grade with {type(other).__name__}")
    return other.rank


def highest(*grades: Grade) -> Grade:
    """The least upper bound of the given grades (O when none are given)."""
    return max(grades, default=Grade.OPEN)


def passage_grade(collection: Grade | str, document: Grade | str) -> Grade:
    """The grade of a passage: the higher of its collection's and its document's.

    The one rule for every path that handles document text — ingest (what may embed it),
    search, grounding, the window's citations. A document uploaded as 공개 into a 민감
    collection is 민감.
    """
    return max(Grade.parse(collection), Grade.parse(document))
