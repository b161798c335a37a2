"""Database ids as callers send them: beyond what the id columns hold (INTEGER: 32 bits on
PostgreSQL) a number names nothing — not found, not the database's "out of range" as a 500."""

from __future__ import annotations

MAX_ID = 2**31 - 1


def in_range(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
