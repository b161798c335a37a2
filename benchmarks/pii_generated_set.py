"""A generated Korean PII evaluation set the recognizers were not tuned on.

Writes benchmarks/results/pii_generated.jsonl (fixed seed): civil-service sentences (민원 회신,
계약, 인사, 출장, 환급 …) carrying personal data in the formats real documents use — with and
without hyphens, spaces or dots, particles glued on, several per sentence — and negatives full of
numbers that are not personal data (dates, amounts, 문서번호, 법령 번호, 우편번호, 주문번호,
invalid check digits). Then score it with the same scorer as the dev set:

    .venv/bin/python benchmarks/pii_generated_set.py
    .venv/bin/python benchmarks/pii_korean.py --data benchmarks/results/pii_generated.jsonl
"""

from __future__ import annotations

import calendar
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "pii_generated.jsonl"
rng = random.Random(20261122)

W = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def birth() -> tuple[str, str]:
    year = rng.randint(1940, 2019)
    month = rng.randint(1, 12)
    day = rng.randint(1, calendar.monthrange(year, month)[1])
    return f"{year % 100:02d}{month:02d}{day:02d}", str(year)


def registration(foreign: bool) -> str:
    front, year = birth()
    century_ok = {True: "56" if int(year) < 2000 else "78", False: "12" if int(year) < 2000 else "34"}[foreign]
    body = front + rng.choice(century_ok) + "".join(str(rng.randint(0, 9)) for _ in range(5))
    total = sum(int(d) * w for d, w in zip(body, W, strict=True))
    check = (13 - total % 11) % 10 if foreign else (11 - total % 11) % 10
    if rng.random() < 0.2:  # issued since Oct 2020: random last digit
        check = rng.randint(0, 9)
    digits = body + str(check)
    return rng.choice([f"{digits[:6]}-{digits[6:]}", digits, f"{digits[:6]} - {digits[6:]}"])


def phone() -> str:
    head = rng.choice(["010", "010", "010", "011", "02", "031", "051", "064", "070", "0505", "0507"])
    mid = str(rng.randint(100, 999)) if head in ("02", "011") and rng.random() < 0.5 else str(rng.randint(1000, 9999))
    tail = f"{rng.randint(0, 9999):04d}"
    sep = rng.choice(["-", "-", ".", " ", ""]) if head.startswith("01") else "-"
    return f"{head}{sep}{mid}{sep}{tail}"


def email() -> str:
    user = rng.choice(["hong", "kim.minsu", "lee_91", "park+work", "jiyoung.choi"])
    return f"{user}@{rng.choice(['korea.kr', 'mois.go.kr', 'gmail.com', 'naver.com', 'seoul.go.kr'])}"


def passport() -> str:
    if rng.random() < 0.5:
        return rng.choice("MSR") + f"{rng.randint(0, 99999999):08d}"
    return rng.choice("MSR") + f"{rng.randint(0, 999):03d}" + rng.choice("ABCDEFGHJK") + f"{rng.randint(0, 9999):04d}"


def licence() -> str:
    parts = [str(rng.randint(11, 28)), f"{rng.randint(0, 99):02d}", f"{rng.randint(0, 999999):06d}",
             f"{rng.randint(0, 99):02d}"]
    return rng.choice(["-", "-", " "]).join(parts)


def brn_digits(valid: bool = True) -> str:
    weights = (1, 3, 7, 1, 3, 7, 1, 3, 5)
    body = f"{rng.randint(101, 999)}{rng.randint(1, 99):02d}{rng.randint(0, 9999):04d}"
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True)) + int(body[8]) * 5 // 10
    check = (10 - total % 10) % 10
    return body + str(check if valid else (check + 1) % 10)


def brn() -> str:
    d = brn_digits()
    return f"{d[:3]}-{d[3:5]}-{d[5:]}"


def card(valid: bool = True) -> str:
    body = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for index, value in enumerate(reversed(body)):
        value = value * 2 if index % 2 == 0 else value
        total += value - 9 if value > 9 else value
    check = (10 - total % 10) % 10
    digits = "".join(map(str, body)) + str(check if valid else (check + 3) % 10)
    sep = rng.choice(["-", " ", ""])
    return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


def account() -> str:
    return rng.choice([f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}",
                       f"{rng.randint(100000, 999999)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}",
                       f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}-{rng.randint(100000, 999999)}"])


POSITIVE = [
    ("RRN", lambda: registration(False), ["민원인 주민등록번호 {v}로 본인 확인을 마쳤습니다.",
                                          "신청서의 주민번호({v})가 등본과 다릅니다.",
                                          "주민등록번호: {v}", "생년월일과 주민번호 {v}을 적어 주세요."]),
    ("FRN", lambda: registration(True), ["외국인등록번호 {v}로 체류자격을 조회했습니다.",
                                         "외국인 근로자(외국인등록번호 {v})의 신고서"]),
    ("PHONE", phone, ["연락처 {v}로 회신 바랍니다.", "담당자 전화 {v}", "휴대폰 {v}으로 문자를 보냈습니다.",
                      "문의: {v} (평일 9시~18시)", "고객센터 {v}로 전화 주세요."]),
    ("EMAIL", email, ["회신 메일은 {v}로 보내 주세요.", "담당자 이메일: {v}"]),
    ("PASSPORT", passport, ["여권번호 {v} 확인 후 출국 처리", "출장자 여권({v}) 사본 제출"]),
    ("DRIVER_LICENSE", licence, ["운전면허번호 {v}의 면허가 정지되었습니다.", "면허번호: {v}"]),
    ("BRN", brn, ["사업자등록번호 {v} 업체와 계약했습니다.", "상호 한빛상사(사업자번호 {v})"]),
    ("CARD", card, ["법인카드 {v}로 결제했습니다.", "카드번호 {v} 승인 취소"]),
    ("ACCOUNT", account, ["환급금은 농협 계좌 {v}로 입금됩니다.", "국민은행 {v} (예금주 홍길동)으로 송금",
                          "지원금 입금 계좌: 신한은행 {v}"]),
]

NEGATIVES = [
    lambda: f"2026년 {rng.randint(1, 12)}월 {rng.randint(1, 28)}일 회의에서 예산 "
            f"{rng.randint(10, 999)},{rng.randint(100, 999)},000원을 의결했다.",
    lambda: f"문서번호 행정안전부-{rng.randint(1000, 9999)}호 "
            f"(2026.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d}.)",
    lambda: f"「개인정보 보호법」 제{rng.randint(1, 80)}조 제{rng.randint(1, 5)}항에 따라 처리한다.",
    lambda: f"우편번호 {rng.randint(10000, 63999)} 세종특별자치시 도움6로 {rng.randint(1, 99)}",
    lambda: f"주문번호 {rng.randint(10**9, 10**10 - 1)} 배송 완료",
    lambda: (lambda d: f"사업자번호 오기재 {d[:3]}-{d[3:5]}-{d[5:]} 는 무효")(brn_digits(valid=False)),
    lambda: f"승인번호 {card(valid=False)} 재확인 필요",
    lambda: f"접수 건수 {rng.randint(1000, 99999)}건, 처리율 {rng.randint(50, 99)}.{rng.randint(0, 9)}%",
    lambda: f"ISBN 979-11-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}-{rng.randint(0, 9)}",
    lambda: f"시간 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}~{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}, 회의실 {rng.randint(100, 999)}호",
]


def main() -> None:
    lines = []
    for _ in range(300):
        count = rng.choice([1, 1, 1, 2, 3])
        parts, spans = [], []
        for kind, make, templates in rng.sample(POSITIVE, count):
            value = make()
            parts.append(rng.choice(templates).format(v=value))
            spans.append({"type": kind, "value": value})
        if rng.random() < 0.4:
            parts.append(rng.choice(NEGATIVES)())
        rng.shuffle(parts)
        lines.append({"text": " ".join(parts), "spans": spans})
    for _ in range(150):
        lines.append({"text": " ".join(rng.choice(NEGATIVES)() for _ in range(rng.randint(1, 3))), "spans": []})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    print(f"written {OUT}: {len(lines)} lines, {sum(len(line['spans']) for line in lines)} spans")


if __name__ == "__main__":
    main()
