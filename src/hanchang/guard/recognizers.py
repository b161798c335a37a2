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
# Between digit groups: nothing, a hyphen, dot, slash or table bar (spaces around it), one or two
# spaces, or a line break (a number split across lines or table cells).
SEP = r"(?:[ \t\u00a0]{0,2}[-./|\\][ \t\u00a0|]{0,3}|[ \t\u00a0]{1,2}|[ \t\u00a0|]{0,3}\n[ \t\u00a0|]{0,3})"
S = SEP + "?"


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
    name: str = ""  # unique among recognizers (several may find one type); the type when unset
    # Words just before a match that say it is something else (법인등록번호 is not a person's).
    not_after: tuple[str, ...] = ()
    group: int = 0  # the pattern's group that is the value (0: the whole match; -1: the first group matched)
    # A cheap test that the text may hold a match at all (the pattern is not run otherwise).
    hint: Callable[[str], bool] | None = None

    @property
    def key(self) -> str:
        return self.name or self.type


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
    if value.lstrip().startswith("+") or digits.startswith("82"):
        digits = "0" + digits[2:].removeprefix("0")
    if digits.startswith("050") and len(digits) == 12:  # 0504-0508 안심번호: 12 digits
        return 0.0
    return 0.0 if 9 <= len(digits) <= 11 else None


def _driver_licence(value: str) -> float | None:
    digits = digits_of(value)
    # Region codes 11-28 of the numeric format (서울 11 … 제주 28).
    return 0.2 if len(digits) == 12 and 11 <= int(digits[:2]) <= 28 else None


_MOBILE = re.compile(r"01[016789]" + S + r"\d{3,4}" + S + r"\d{4}")


def _account(value: str) -> float | None:
    digits = digits_of(value)
    if _MOBILE.fullmatch(value.strip()):  # a mobile number beside a bank's name is still a phone number
        return None
    return 0.0 if 10 <= len(digits) <= 14 else None


_REG = _NO_DIGIT_BEFORE + r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])" + S + r"[0-9]\d{6}" + _NO_DIGIT_AFTER
_PHONE = re.compile(
    _NO_DIGIT_BEFORE
    + r"(?:(?:(?:\+|00)82|82(?=[ \-]))" + S + r"(?:\(0\)" + S + r")?0?|0)"
    + r"(?:1[016789]|2|[3-6][1-5]|70|50[2-8]?|80)"
    + r"(?:" + S + r"\d{3,4}" + S + r"\d{4}|\)\s?\d{3,4}" + S + r"\d{4})"
    + _NO_DIGIT_AFTER
    + r"|" + _NO_DIGIT_BEFORE + r"\(0(?:2|[3-6][1-5]|70)\)\s?\d{3,4}" + S + r"\d{4}" + _NO_DIGIT_AFTER
)
_AT = r"(?:@|\s?[\[(]\s?at\s?[\])]\s?|\s골뱅이\s)"
_DOT = r"(?:\.|\s?[\[(]\s?dot\s?[\])]\s?)"
# -- people's names and addresses --------------------------------------------------------------
# A name is found where a form or a letter says it is one: after a label (성명: 홍길동, | 신청인 |
# 김민수 |) or before a form of address or a title (김민수 님, 박영희 씨, 홍길동 주무관). The name
# itself is a Korean surname and one or two syllables; common words that look like one are not.
_SURNAME = ("(?:남궁|황보|제갈|선우|독고|사공|서문|[김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허노남"
            "심하곽성차주우구민류나진지엄채원천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉])")
_NAME = _SURNAME + "[가-힣]{1,2}"
_PARTICLE = r"(?=(?:[은는이가을를의께와과도만]|에게|에게서|이며|이고|입니다|이다|님|씨)?(?![가-힣]))"
_LABELS = (r"성\s?명|이\s?름|성함|담당자|담당|신청인|민원인|작성자|보호자|대표자|수신자|발신자|예금주|환자명|고객명|"
           r"신청자|대상자|참석자|피해자|신고인|청구인|상담자|문의자|책임자|제출자|받는\s?분|보내는\s?분|대리인|"
           r"세대주|소유자|임차인|임대인|근로자|지원자|수령인|계약자|성명\(한글\)|민원인 성명")
_TITLES = ("님|씨|주무관|사무관|서기관|과장|팀장|국장|계장|실장|부장|차장|대리|주임|선생님|교수|귀하|원장|센터장|소장|"
           "변호사|세무사|기자|의원|박사|반장|주사|조사관|상담사|복지사")


def _words(*lines: str) -> frozenset[str]:
    return frozenset(word for line in lines for word in line.split())


NOT_NAMES = _words(
    "이번 이상 이하 이전 이후 이용 이것 이름 이미 이제 이유 이외 정부 정책 정도 정보 정리 정상 주민 주무 주요",
    "주간 주소 고객 고용 공공 공무 공문 공지 공개 민원 민간 한국 한번 전체 전화 전국 전자 전달 강조 조사 조치",
    "신청 신고 신규 안내 안전 문의 문서 구청 시청 도청 도로 우리 우편 우선 하루 하나 성명 장관 차관 기관 기타",
    "기간 기존 방문 방법 현재 현장 원장 연락 연구 오늘 오전 오후 서울 서류 소속 소관 선생 설명 송부 손님 유관",
    "진행 지원 지역 지난 채용 표준 명의 반드시 금일 인사 인원 제출 제목 모든 국장 국가 어제 은행 용도 예산 경우",
    "경기 부서 부산 배정 허가 노동 심사 성과 차량 구분 나라 진료 원본 방침 함께 변경 여러분 추가 도움 소개 마감",
    "위원 명단 기준 반영 모집 고객님 담당자 여러분께 관계자 보호자 대표 사용자 이용자 방문자 신청인 민원인 작성자",
    "본인 귀하 각위 선배 후배 동료 상사 부하 직원 시민 국민 학생 환자 회원 주임 대리 과장 팀장 실장 부장 차장",
    "계장 교수 기자 의원 박사 강사 고문 감사 회장 사장 이사 전무 상무 조합 조합원 남자 여자 안녕 감사합 수고",
    "고생 담당 주무관 사무관 서기관 정보화 임차 임대 소유 근로 지원자 수령 계약 신고인 청구 상담 문의자",
    "제도 제공 제안 제한 제외 지정 지급 지침 도입 도시 소득 소방 구성 구축 기술 기능 교육 공유 공고 관리 운영")
# After a form's label (a colon, bar, tab or bracket between), any name, particles glued on; after a
# label in running prose (spaces only), a full three-syllable name, or one with nothing glued on —
# so "책임자 제도를" and "담당하는" are not names.
_NAME_AFTER_LABEL = re.compile(
    r"(?:" + _LABELS + r")[ \u00a0]*[:：|\t)\]][ \t\u00a0:：|]*(" + _NAME + r")" + _PARTICLE
    + r"|(?<![가-힣])(?:" + _LABELS + r")[ \u00a0]+(" + _SURNAME + r"[가-힣]{2}(?<![를을의에로와과]))" + _PARTICLE
    + r"|(?<![가-힣])(?:" + _LABELS + r")[ \u00a0]+(" + _NAME + r")(?![가-힣])")
_NAME_BEFORE_TITLE = re.compile(r"(?<![가-힣])(" + _NAME + r")\s?(?:" + _TITLES + r")"
                                r"(?:(?![가-힣])|(?=[은는이가을를의께과와도에]))")

_PROVINCE = ("(?:서울특별시|서울시|서울|부산광역시|부산시|부산|대구광역시|대구시|대구|인천광역시|인천시|인천|"
             "광주광역시|광주시|대전광역시|대전시|대전|울산광역시|울산시|울산|세종특별자치시|세종시|세종|경기도|경기|"
             "강원특별자치도|강원도|강원|충청북도|충북|충청남도|충남|전북특별자치도|전라북도|전북|전라남도|전남|"
             "경상북도|경북|경상남도|경남|제주특별자치도|제주도|제주)")
_CITY = r"[가-힣]{1,5}(?:시|군|구)"
_ROAD = r"[가-힣0-9]{1,10}(?:대로|로|길)(?:\s?\d{1,4}(?:번|가)?길)?\s?\d{1,5}(?:-\d{1,5})?"
_LOT = r"[가-힣0-9]{1,8}(?:동|읍|면|리|가)\s?(?:산\s?)?\d{1,5}(?:-\d{1,5})?(?:\s?번지)?"
_TAIL = (r"(?:,?\s?(?:[가-힣A-Za-z0-9]{1,15}\s)?\d{1,4}동\s?\d{1,5}호|,?\s?\d{1,3}층(?:\s?\d{1,5}호)?"
         r"|,?\s?\d{1,5}호)?(?:\s?\([가-힣0-9,.\s]{1,20}\))?")
_TOWN = r"(?:[가-힣]{1,6}(?:읍|면)\s?)?"
_ADDRESS_WITH_PROVINCE = re.compile(r"(?<![가-힣])" + _PROVINCE + r"\s?(?:" + _CITY + r"\s?){0,2}" + _TOWN
                                    + r"(?:" + _ROAD + "|" + _LOT + ")" + _TAIL)
_ADDRESS_IN_CONTEXT = re.compile(r"(?<![가-힣])(?:" + _CITY + r"\s?){1,2}" + _TOWN
                                 + r"(?:" + _ROAD + "|" + _LOT + ")" + _TAIL)
ADDRESS_CONTEXT = ("주소", "거주지", "주거지", "소재지", "도로명", "지번", "배송지", "사는 곳", "현주소", "주 소",
                   "address")


_LABEL_WORDS = tuple(_words("성 이름 성함 담당 신청 민원인 작성자 보호자 대표자 수신 발신 예금주 환자명 고객명 대상자",
                            "참석자 피해자 신고인 청구인 상담자 문의자 책임자 제출자 받는 보내는 대리인 세대주 소유자",
                            "임차인 임대인 근로자 지원자 수령인 계약자"))
_TITLE_WORDS = tuple(_words("님 씨 관 장 대리 주임 교수 귀하 변호사 세무사 기자 의원 박사 주사 상담사 복지사"))
_ADDRESS_HINT = re.compile(r"[로길동가리읍면]\s?(?:산\s?)?\d")


def _has_any(words: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda text: any(word in text for word in words)


def _a_name(value: str) -> float | None:
    return None if value in NOT_NAMES or value[:2] in NOT_NAMES else 0.0


PERSON_RECOGNIZERS = (
    Recognizer("NAME", "이름", _NAME_AFTER_LABEL, 0.75, validate=_a_name, name="NAME_AFTER_LABEL", group=-1,
               hint=_has_any(_LABEL_WORDS)),
    Recognizer("NAME", "이름", _NAME_BEFORE_TITLE, 0.7, validate=_a_name, name="NAME_BEFORE_TITLE", group=-1,
               hint=_has_any(_TITLE_WORDS)),
    Recognizer("ADDRESS", "주소", _ADDRESS_WITH_PROVINCE, 0.7, ADDRESS_CONTEXT, name="ADDRESS",
               hint=_ADDRESS_HINT.search),
    Recognizer("ADDRESS", "주소", _ADDRESS_IN_CONTEXT, 0.45, ADDRESS_CONTEXT, needs_context=True,
               name="ADDRESS_IN_CONTEXT", hint=lambda text: bool(_ADDRESS_HINT.search(text))
               and any(word in text for word in ADDRESS_CONTEXT)),
)
NOT_A_PERSON = ("법인등록번호", "법인번호", "법인 등록번호", "등기번호", "사업자")

BUILTIN_RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "RRN", "주민등록번호", re.compile(_REG), 0.6,
        ("주민등록번호", "주민번호", "주민등록", "생년월일", "주민"), validate=_registration("RRN"),
        not_after=NOT_A_PERSON,
    ),
    Recognizer(
        "FRN", "외국인등록번호", re.compile(_REG), 0.6,
        ("외국인등록번호", "외국인번호", "외국인등록", "외국인", "등록번호"),
        validate=_registration("FRN"), not_after=NOT_A_PERSON,
    ),
    Recognizer(
        "PHONE", "전화번호", _PHONE,
        0.55, ("연락처", "전화", "휴대폰", "핸드폰", "휴대전화", "번호", "회신", "문자", "tel", "phone",
               "고객센터", "대표번호", "문의", "안심번호", "mobile", "fax", "팩스"),
        validate=_phone,
    ),
    Recognizer(
        "EMAIL", "이메일",
        re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*" + _AT + r"[A-Za-z0-9-]+(?:" + _DOT
                   + r"[A-Za-z0-9-]+)*" + _DOT + r"[A-Za-z]{2,}(?![A-Za-z0-9])", re.IGNORECASE),
        0.9, ("이메일", "메일", "email", "e-mail"),
    ),
    Recognizer(
        "PASSPORT", "여권번호",
        # Old format: letter + 8 digits; since 2021: letter + 3 digits + letter + 4 digits.
        re.compile(r"(?<![A-Za-z0-9])[MSRODGT][ -]?(?:\d{8}|\d{3}[A-Z]\d{4})(?![A-Za-z0-9])"),
        0.5, ("여권번호", "여권", "passport"),
    ),
    Recognizer(
        "DRIVER_LICENSE", "운전면허번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{2}" + S + r"\d{2}" + S + r"\d{6}" + S + r"\d{2}" + _NO_DIGIT_AFTER),
        0.45, ("운전면허번호", "운전면허", "면허번호", "면허"), validate=_driver_licence, needs_context=True,
        name="DRIVER_LICENSE_CONTEXT",
    ),
    Recognizer(
        "DRIVER_LICENSE", "운전면허번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{2}-\d{2}-\d{6}-\d{2}" + _NO_DIGIT_AFTER),
        0.6, ("운전면허번호", "운전면허", "면허번호", "면허"), validate=_driver_licence,
    ),
    Recognizer(
        "BRN", "사업자등록번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{3}" + SEP + r"\d{2}" + SEP + r"\d{5}" + _NO_DIGIT_AFTER),
        0.5, ("사업자등록번호", "사업자번호", "사업자", "법인", "업체", "상호", "등록번호"), validate=_brn,
    ),
    Recognizer(  # written without separators: only right after its label, and with a valid check digit
        "BRN", "사업자등록번호",
        re.compile(_NO_DIGIT_BEFORE + r"\d{10}" + _NO_DIGIT_AFTER),
        0.5, ("사업자등록번호", "사업자번호", "사업자 등록번호", "등록번호"), validate=_brn, needs_context=True,
        name="BRN_PLAIN",
    ),
    Recognizer(
        "CARD", "카드번호",
        re.compile(_NO_DIGIT_BEFORE + r"(?:\d{4}" + S + r"\d{4}" + S + r"\d{4}" + S + r"\d{4}|\d{4}" + S
                   + r"\d{6}" + S + r"\d{5})" + _NO_DIGIT_AFTER),
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
    *PERSON_RECOGNIZERS,
)


@cache
def all_recognizers() -> tuple[Recognizer, ...]:
    """The built-ins and those plugins add (`hanchang.recognizers`), loaded on first use (a plugin
    imports this module). Several recognizers may find one type; each has its own name (a
    plugin's is its entry point's), and no plugin may take a name already in use."""
    builtin = {r.key: r for r in BUILTIN_RECOGNIZERS}
    assert len(builtin) == len(BUILTIN_RECOGNIZERS), "built-in recognizer names must be unique"
    return tuple(plugins.merged(plugins.RECOGNIZERS, builtin,
                                plugins.load_typed(plugins.RECOGNIZERS, Recognizer)).values())


@cache
def labels_ko() -> dict[str, str]:
    """Each type's Korean placeholder word."""
    return {r.type: r.label_ko for r in all_recognizers()}
