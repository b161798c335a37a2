"""Who is calling: a user of an agency, acting with one role."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    USER = "user"
    AGENCY_ADMIN = "agency_admin"
    PLATFORM_ADMIN = "platform_admin"
    AUDITOR = "auditor"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r}: use one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    user_name: str
    agency_id: int
    agency_code: str
    role: Role
    api_key_id: int | None = None
