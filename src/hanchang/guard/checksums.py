"""Check digits of Korean identifiers and cards. Pure functions over digit strings."""

from __future__ import annotations

import calendar


def digits_of(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _registration_check_ok(digits: str, constant: int) -> bool:
    if len(digits) != 13:
        return False
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    total = sum(int(d) * w for d, w in zip(digits[:12], weights, strict=True))
    return (constant - total % 11) % 10 == int(digits[12])


def rrn_checksum_ok(digits: str) -> bool:
    """The pre-October-2020 resident registration number check digit: (11 - sum mod 11) mod 10.

    Numbers issued since October 2020 carry a random last digit, so a failed check never
    rejects a number by itself; a passing one raises confidence.
    """
    return _registration_check_ok(digits, 11)


def frn_checksum_ok(digits: str) -> bool:
    """The pre-October-2020 foreigner registration number check digit: the same weights as the
    RRN, but (13 - sum mod 11) mod 10."""
    return _registration_check_ok(digits, 13)


_CENTURY = {"9": 1800, "0": 1800, "1": 1900, "2": 1900, "5": 1900, "6": 1900,
            "3": 2000, "4": 2000, "7": 2000, "8": 2000}


def registration_date_ok(digits: str) -> bool:
    """YYMMDD plus the 7th (century/sex) digit form a real date of birth."""
    if len(digits) < 7 or digits[6] not in _CENTURY:
        return False
    year = _CENTURY[digits[6]] + int(digits[:2])
    month, day = int(digits[2:4]), int(digits[4:6])
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def brn_checksum_ok(digits: str) -> bool:
    """사업자등록번호 (10 digits) check digit."""
    if len(digits) != 10:
        return False
    weights = (1, 3, 7, 1, 3, 7, 1, 3, 5)
    total = sum(int(d) * w for d, w in zip(digits[:9], weights, strict=True))
    total += int(digits[8]) * 5 // 10
    return (10 - total % 10) % 10 == int(digits[9])


def luhn_ok(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, ch in enumerate(reversed(digits)):
        value = int(ch)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0
