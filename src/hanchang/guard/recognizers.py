"""The Korean personal-data recognizers: one registry, declared here.

Each recognizer is a regular expression for the shape, an optional validator (dates,
check digits), and Korean context words that raise confidence when they stand just before
the match. Particles glued to a number (`…567이며`) do not break detection: boundaries are
"no digit/letter of the same kind around", not whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from hanchang import plugins
from hanchang.guard.checksums import (
    brn_checksum_ok,
    digits_of,
    frn_checksum_ok,
    luhn_ok,
    registration_date_ok,
    rrn_checksum_ok,
)

# A digit run must not continue into more digits (or a hyphenated digit group) on either side.
_NO_DIGIT_BEFORE = r"(?<![\d\-.])"
_NO_DIGIT_AFTER = r"(?![\d]|-\d|\.\d)"
_SEP = r"[-. ]?"


@dataclass(frozen=True)
class Recognizer:
    type: str
    label_ko: str  # placeholder word, e.g. 주민등록번호 -> [주민등록번호1]
    pattern: re.Pattern[str]
    base_score: float
    context: tuple[str, ...] = ()
    context_boost: float = 0.35
    # Returns a score adjustment (None = reject the candidate).
    validate: Callable[[str], float | None] | None = None
    needs_context: bool = False


def _registration(kind: str) -> Callable[[str], float | None]:
    korean, foreign = set("129034"), set("5678")

    def check(value: str) -> float | None:
        digits = digits_of(value)
        if len(digits) != 13 or not registration_date_ok(digits):
            return None
        if digits[6] not in (korean if kind == "RRN" else foreign):
            return None
        # Check digits hold for numbers issued before Oct 2020; newer ones are random.
        valid = rrn_checksum_ok(digits) if kind == "RRN" else frn_checksum_ok(digits)
        return 0.3 if valid else 0.0

    return check


def _brn(value: str) -> float | None:
    return 0.2 if brn_checksum_ok(digits_of(value)) else None


def _card(value: str) -> float | None:
    return 0.3 if luhn_ok(digits_of(value)) else None


def _phone(value: str) -> float | None:
    digits = digits_of(value)
    if digits.startswith("050") and len(digits) == 12:  # 0504-0508 안심번호: 12 digits
        return 0.0
    return 0.0 if 9 <= len(digits) <= 11 else None


def _driver_licence(value: str) -> float | None:
    digits = digits_of(value)
    # Region codes 11-28 of the numeric format (서울 11 … 제주 28).
    return 0.2 if len(digits) == 12 and 11 <= int(digits[:2]) <= 28 else None


_MOBILE = re.compile(r"01[016789][-. ]?\d{3,4}[-. ]?\d{4}")


def _account(value: str) -> float | None:
    digits = digits_of(value)
    if _MOBILE.fullmatch(value.strip()):  # a mobile number beside a bank's name is still a phone number
        return None
    return 0.0 if 10 <= len(digits) <= 14 else None


_REG = _NO_DIGIT_BEFORE + r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?-?\s?[0-9]\d{6}" + _NO_DIGIT_AFTER

BUILTIN_RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "RRN", "주민등록번호", re.compile(_REG), 0.6,
        ("주민등록번호", "주민번호", "주민등록", "생년월일", "주민"), validate=_registration("RRN"),
    ),
    Recognizer(
        "FRN", "외국인등록번호", re.compile(_REG), 0.6,
        ("외국인등록번호", "외국인번호", "외국인등록", "외국인", "등록번호"),
        validate=_registration("FRN"),
    ),
    Recognizer(
        "PHONE", "전화번호",
        re.compile(
            _NO_DIGIT_BEFORE
            + r"(?:\+82[-. ]?)?(?:01[016789]|02|0[3-6][1-5]|070|050[2-8]?|080)"
            + r"(?:[-. ]?\d{3,4}[-. ]?\d{4}|\)\s?\d{3,4}-\d{4})"
            + _NO_DIGIT_AFTER
        ),
        0.55, ("연락처", "전화", "휴대폰", "핸드폰", "휴대전화", "번호", "회신", "문자", "tel", "phone",
               "고객센터", "대표번호", "문의", "안심번호"),
        validate=_phone,
    ),
    Recognizer(
        "EMAIL", "이메일",
        re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        0.9, ("이메일", "메일", "email", "e-mail"),
    ),
    Recognizer(
        "PASSPORT", "여권번호",
        # Old format: letter + 8 digits; since 2021: letter + 3 digits + letter + 4 digits.
        re.compile(r"(?<![A-Za-z0-9])[MSRODGT](?:\d{8}|\d{3}[A-Z]\d{4})(?![A-Za-z0-9])"),
        0.5, ("여권번호", "여권", "passport"),
    ),
    Recognizer(
        "DRIVER_LICENSE", "운전면허번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{2}[- ]\d{2}[- ]\d{6}[- ]\d{2}" + _NO_DIGIT_AFTER
                   + r"|(?<=면허번호 )\d{12}(?!\d)|(?<=면허번호: )\d{12}(?!\d)"),
        0.6, ("운전면허번호", "운전면허", "면허번호", "면허"), validate=_driver_licence,
    ),
    Recognizer(
        "BRN", "사업자등록번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{3}-\d{2}-\d{5}" + _NO_DIGIT_AFTER),
        0.5, ("사업자등록번호", "사업자번호", "사업자", "법인", "업체", "상호"), validate=_brn,
    ),
    Recognizer(  # written without hyphens: only right after its label, and with a valid check digit
        "BRN", "사업자등록번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{10}" + _NO_DIGIT_AFTER),
        0.5, ("사업자등록번호", "사업자번호", "사업자 등록번호", "등록번호"), validate=_brn, needs_context=True,
    ),
    Recognizer(
        "CARD", "카드번호",
        re.compile(_NO_DIGIT_BEFORE + r"(?:\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}|\d{4}[- ]?\d{6}[- ]?\d{5})"
                   + _NO_DIGIT_AFTER),
        0.5, ("카드번호", "카드", "신용카드", "체크카드", "결제"), validate=_card,
    ),
    Recognizer(
        "ACCOUNT", "계좌번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{2,6}-\d{2,6}-\d{2,7}(?:-\d{1,3})?" + _NO_DIGIT_AFTER
                   + r"|" + _NO_DIGIT_BEFORE + r"\d{10,14}" + _NO_DIGIT_AFTER),
        0.3,
        ("계좌번호", "계좌", "통장", "입금", "예금", "송금", "이체", "환급", "농협", "국민은행", "신한",
         "우리은행", "하나은행", "기업은행", "카카오뱅크", "토스뱅크", "새마을금고", "우체국", "수협",
         "은행"),
        context_boost=0.4, validate=_account, needs_context=True,
    ),
)



@cache
def all_recognizers() -> tuple[Recognizer, ...]:
    """The built-ins and those plugins add (`hanchang.recognizers`), loaded on first use (a plugin
    imports this module); a type may be recognised by one recognizer only."""
    return tuple(plugins.merged(
        plugins.RECOGNIZERS, {r.type: r for r in BUILTIN_RECOGNIZERS},
        [(r.type, r) for _, r in plugins.load_typed(plugins.RECOGNIZERS, Recognizer)]).values())


@cache
def labels_ko() -> dict[str, str]:
    """Each type's Korean placeholder word."""
    return {r.type: r.label_ko for r in all_recognizers()}
