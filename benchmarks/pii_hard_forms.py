"""A hard Korean personal-data set from real form layouts, in two families of templates:

- `dev`: the templates the recognizers were tuned on;
- `heldout`: other templates, written at the same time and never tuned on (reported only).

Layouts: 민원 신청서 tables (markdown bars, HWP text tables, one field per cell, numbers split
across cells), letters (공문, 회신), 민원 text and chat messages. Values are written the ways people
write them: hyphens, spaces, dots, ` . `, slashes, line breaks, en dashes and U+2010, full-width
digits, Hangul numerals (공일공-…), +82, valid check digits; with negatives full of numbers that
are not personal data (법인등록번호, dates, amounts, 문서번호, 우편번호, 조항). Each span is known
by its offsets, and a finding counts when it covers the value (≥ 90 % of its characters) without
running far past it — what masking needs.

    .venv/bin/python benchmarks/pii_hard_forms.py            # both families, by type
    .venv/bin/python benchmarks/pii_hard_forms.py --family heldout --show-misses

Writes benchmarks/results/pii_hard_forms.json (and the generated sets as JSONL beside it).
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import time
from collections import Counter
from pathlib import Path

from hanchang.guard.pii import scan

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TYPES = ["RRN", "FRN", "PHONE", "EMAIL", "BRN", "CARD", "PASSPORT", "DRIVER_LICENSE", "ACCOUNT", "NAME", "ADDRESS"]
W = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
SURNAMES = "김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공현"
GIVEN = "민서지현우준영수진혜은성호재윤아하도경미희석태훈동연주예원빈선정가람슬기보나소라"
HANGUL_DIGIT = "공일이삼사오육칠팔구"
FULL = str.maketrans("0123456789-", "０１２３４５６７８９－")


class Maker:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def digits(self, n: int) -> str:
        return "".join(str(self.rng.randint(0, 9)) for _ in range(n))

    def registration(self, foreign: bool = False) -> str:
        year = self.rng.randint(1945, 2018)
        month = self.rng.randint(1, 12)
        day = self.rng.randint(1, calendar.monthrange(year, month)[1])
        seventh = self.rng.choice(("56" if year < 2000 else "78") if foreign else ("12" if year < 2000 else "34"))
        body = f"{year % 100:02d}{month:02d}{day:02d}{seventh}{self.digits(5)}"
        total = sum(int(d) * w for d, w in zip(body, W, strict=True))
        return body + str(((13 if foreign else 11) - total % 11) % 10)

    def corporate(self) -> str:  # 법인등록번호: not a person's
        body = self.rng.choice(["110111", "134511", "284411", "160111"]) + self.digits(6)
        total = sum(int(d) * w for d, w in zip(body, (1, 2) * 6, strict=True))
        return body + str((10 - total % 10) % 10)

    def brn(self) -> str:
        while True:
            body = f"{self.rng.randint(101, 899)}{self.rng.randint(1, 99):02d}{self.digits(4)}"
            total = sum(int(d) * w for d, w in zip(body, (1, 3, 7, 1, 3, 7, 1, 3, 5), strict=True))
            total += int(body[8]) * 5 // 10
            return body + str((10 - total % 10) % 10)

    def card(self) -> str:
        body = self.rng.choice(["4", "5", "9"]) + self.digits(14)
        total = 0
        for index, ch in enumerate(reversed(body)):
            value = int(ch) * (2 if index % 2 == 0 else 1)
            total += value - 9 if value > 9 else value
        return body + str((10 - total % 10) % 10)

    def mobile(self) -> str:
        return "010" + self.digits(8)

    def landline(self) -> str:
        area = self.rng.choice(["02", "031", "032", "044", "051", "053", "062", "064"])
        return area + self.digits(3 if area == "02" and self.rng.random() < 0.3 else 4) + self.digits(4)

    def name(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2, 2, 2))))

    def email(self) -> str:
        user = "".join(self.rng.choice("abcdefghijkmnpqrstuvwxyz") for _ in range(self.rng.randint(3, 8)))
        return user + self.digits(self.rng.randint(0, 3)) + "@" + self.rng.choice(
            ["korea.kr", "mois.go.kr", "naver.com", "gmail.com", "daum.net", "seoul.go.kr"])

    def address(self, heldout: bool) -> str:
        roads = [("서울특별시 종로구", "세종대로"), ("경기도 성남시 분당구", "판교역로"),
                 ("부산광역시 해운대구", "해운대로"), ("대전광역시 서구", "둔산로"), ("세종특별자치시", "한누리대로"),
                 ("광주광역시 북구", "용봉로")]
        if heldout:
            roads = [("서울시 강남구", "테헤란로"), ("인천광역시 연수구", "컨벤시아대로"),
                     ("충청남도 천안시 동남구", "만남로"), ("경상북도 포항시 남구", "대잠동길"),
                     ("제주특별자치도 제주시", "문연로"), ("전북특별자치도 전주시 완산구", "효자로")]
        region, road = self.rng.choice(roads)
        number = f"{self.rng.randint(1, 400)}" + (f"-{self.rng.randint(1, 30)}" if self.rng.random() < 0.3 else "")
        tail = self.rng.choice(["", f", {self.rng.randint(1, 15)}층", f" {self.rng.randint(101, 120)}동 "
                                f"{self.rng.randint(101, 1504)}호", f", {self.rng.randint(101, 909)}호"])
        if self.rng.random() < 0.3:  # 지번
            dong = self.rng.choice(["역삼동", "우동", "둔산동", "연동", "봉명동", "송도동"])
            return f"{region} {dong} {self.rng.randint(1, 999)}-{self.rng.randint(1, 99)}" + tail
        return f"{region} {road} {number}{tail}"

    # -- how people write them ---------------------------------------------------------------------
    def spell(self, digits: str, groups: tuple[int, ...], style: str) -> str:
        parts, position = [], 0
        for size in groups:
            parts.append(digits[position:position + size])
            position += size
        sep = {"hyphen": "-", "space": " ", "dot": ".", "spaced-dot": " . ", "slash": "/", "newline": "\n",
               "en": "–", "u2010": "‐", "none": "", "full": "-", "hangul": "-", "cells": " | "}[style]
        text = sep.join(parts)
        if style == "full":
            text = text.translate(FULL)
        if style == "hangul":
            text = "".join(HANGUL_DIGIT[int(ch)] if ch.isdigit() else ch for ch in text)
        return text

    def style(self, hard: float = 0.7) -> str:
        if self.rng.random() > hard:
            return "hyphen"
        return self.rng.choice(["space", "dot", "spaced-dot", "slash", "newline", "en", "u2010", "none", "full",
                                "hangul", "cells"])


class Record:
    def __init__(self):
        self.text = ""
        self.spans: list[dict] = []

    def add(self, piece: str, kind: str | None = None) -> Record:
        if kind:
            self.spans.append({"type": kind, "start": len(self.text), "end": len(self.text) + len(piece),
                               "value": piece})
        self.text += piece
        return self

    def dump(self) -> dict:
        return {"text": self.text, "spans": self.spans}


def value(m: Maker, kind: str, heldout: bool) -> str:
    if kind == "RRN":
        return m.spell(m.registration(), (6, 7), m.style())
    if kind == "FRN":
        return m.spell(m.registration(True), (6, 7), m.style())
    if kind == "PHONE":
        number = m.mobile() if m.rng.random() < 0.7 else m.landline()
        if number.startswith("010") and m.rng.random() < 0.2:
            return "+82 " + m.spell(number[1:], (2, 4, 4), m.rng.choice(["hyphen", "space", "hyphen"]))
        groups = (3, 4, 4) if len(number) == 11 else ((2, 3, 4) if number.startswith("02") and len(number) == 9
                                                      else ((2, 4, 4) if number.startswith("02") else (3, 3, 4)
                                                            if len(number) == 10 else (3, 4, 4)))
        return m.spell(number, groups, m.style())
    if kind == "EMAIL":
        email = m.email()
        return email.replace("@", m.rng.choice(["@", "@", "＠", " [at] "])) if m.rng.random() < 0.5 else email
    if kind == "BRN":
        return m.spell(m.brn(), (3, 2, 5), m.rng.choice(["hyphen", "space", "dot", "full", "en"]))
    if kind == "CARD":
        return m.spell(m.card(), (4, 4, 4, 4), m.rng.choice(["hyphen", "space", "none", "full"]))
    if kind == "PASSPORT":
        return m.rng.choice("MS") + m.digits(8)
    if kind == "DRIVER_LICENSE":
        return m.spell(f"{m.rng.randint(11, 28)}{m.digits(10)}", (2, 2, 6, 2), m.rng.choice(["hyphen", "space"]))
    if kind == "ACCOUNT":
        return m.rng.choice([f"{m.digits(3)}-{m.digits(2)}-{m.digits(6)}", f"{m.digits(6)}-{m.digits(2)}-{m.digits(6)}",
                             f"{m.digits(4)}-{m.digits(3)}-{m.digits(6)}"])
    if kind == "NAME":
        return m.name()
    if kind == "ADDRESS":
        return m.address(heldout)
    raise ValueError(kind)


LABELS = {"RRN": "주민등록번호", "FRN": "외국인등록번호", "PHONE": "연락처", "EMAIL": "이메일",
          "BRN": "사업자등록번호", "CARD": "카드번호", "PASSPORT": "여권번호", "DRIVER_LICENSE": "운전면허번호",
          "ACCOUNT": "입금 계좌(국민은행)",
          "NAME": "성명", "ADDRESS": "주소"}
HELD_LABELS = {"RRN": "주민번호", "FRN": "외국인 등록번호", "PHONE": "휴대전화", "EMAIL": "전자우편(e-mail)",
               "BRN": "사업자 번호", "CARD": "신용카드", "PASSPORT": "여권 번호", "DRIVER_LICENSE": "운전면허",
               "ACCOUNT": "환급 계좌 농협", "NAME": "신청인", "ADDRESS": "현주소"}


def negative(m: Maker, r: Record) -> None:
    r.add(m.rng.choice([
        f"법인등록번호 {m.spell(m.corporate(), (6, 7), 'hyphen')}인 법인의 등기를 확인함. ",
        f"접수일 2026.{m.rng.randint(1, 12):02d}.{m.rng.randint(1, 28):02d}, 문서번호 행정안전부-{m.digits(4)}. ",
        f"예산 {m.rng.randint(1, 999)},{m.digits(3)},{m.digits(3)}원을 배정한다. ",
        f"우편번호 {m.digits(5)} 관할 우체국. "
        f"「개인정보 보호법」 제{m.rng.randint(1, 80)}조 제{m.rng.randint(1, 5)}항. ",
        f"처리 기한은 {m.rng.randint(1, 30)}일, 회의는 14:30에 시작한다. 주문번호 {m.digits(12)}. ",
        f"통계: 2025년 {m.rng.randint(10, 99)}.{m.digits(1)}% 증가, 표본 {m.digits(4)}명. ",
        "담당 부서의 의견을 들어 고객님께 안내하겠습니다. 여러분의 협조를 부탁드립니다. ",
        f"법인 등록번호: {m.spell(m.corporate(), (6, 7), 'space')} (주식회사 한창). ",
    ]))


def dev_record(m: Maker, kinds: list[str]) -> Record:
    r = Record()
    layout = m.rng.choice(["table", "letter", "minwon", "chat"])
    if layout == "table":
        r.add("| 항목 | 내용 |\n|---|---|\n")
        for kind in kinds:
            r.add(f"| {LABELS[kind]} | ").add(value(m, kind, False), kind).add(" |\n")
    elif layout == "letter":
        r.add("수신: 민원인 귀하\n제목: 민원 처리 결과 회신\n")
        for kind in kinds:
            if kind == "NAME":
                r.add("담당자 ").add(value(m, kind, False), kind).add(" 주무관이 처리하였습니다. ")
            else:
                r.add(f"귀하의 {LABELS[kind]}는 ").add(value(m, kind, False), kind).add("(으)로 확인됩니다. ")
    elif layout == "minwon":
        for kind in kinds:
            if kind == "NAME":
                r.add(value(m, kind, False), kind).add(" 님께서 다음과 같이 민원을 신청하셨습니다. ")
            else:
                r.add(f"{LABELS[kind]}: ").add(value(m, kind, False), kind).add(" / ")
    else:
        for kind in kinds:
            if kind == "NAME":
                r.add("안녕하세요 ").add(value(m, kind, False), kind).add("씨, ")
            else:
                r.add(f"제 {LABELS[kind]} ").add(value(m, kind, False), kind).add(" 이에요 ㅎㅎ ")
    if m.rng.random() < 0.5:
        negative(m, r)
    return r


def heldout_record(m: Maker, kinds: list[str]) -> Record:
    """Other layouts and wordings than the dev family (never tuned on)."""
    r = Record()
    layout = m.rng.choice(["hwp-table", "form-lines", "email", "messenger", "report"])
    if layout == "hwp-table":  # an HWP table pasted as text: label cell, value cell, tabs
        for kind in kinds:
            r.add(f"{HELD_LABELS[kind]}\t").add(value(m, kind, True), kind).add("\t\n")
    elif layout == "form-lines":
        r.add("[민원 신청서]\n")
        for kind in kinds:
            r.add(f"○ {HELD_LABELS[kind]} : ").add(value(m, kind, True), kind).add("\n")
    elif layout == "email":
        r.add("보낸 사람: 민원 창구\n받는 사람: 처리 부서\n\n")
        for kind in kinds:
            if kind == "NAME":
                r.add("신청인 ").add(value(m, kind, True), kind).add("의 자료를 첨부합니다. ")
            else:
                r.add(f"{HELD_LABELS[kind]}은(는) ").add(value(m, kind, True), kind).add("입니다. ")
    elif layout == "messenger":
        for kind in kinds:
            if kind == "NAME":
                r.add("[").add(value(m, kind, True), kind).add(" 과장] 확인 부탁드려요\n")
            else:
                r.add(f"{HELD_LABELS[kind]} 보내드립니다 → ").add(value(m, kind, True), kind).add("\n")
    else:
        for kind in kinds:
            if kind == "NAME":
                r.add("조사 대상자 ").add(value(m, kind, True), kind).add("(45세)는 ")
            else:
                r.add(f"{HELD_LABELS[kind]}(").add(value(m, kind, True), kind).add(")를 제출하였고, ")
        r.add("이상과 같이 보고합니다.")
    if m.rng.random() < 0.5:
        negative(m, r)
    return r


def generate(family: str, n: int = 300) -> list[dict]:
    m = Maker(20261205 if family == "dev" else 31337)
    make = dev_record if family == "dev" else heldout_record
    out = []
    for _ in range(n):
        kinds = m.rng.sample(TYPES, m.rng.randint(1, 4))
        out.append(make(m, kinds).dump())
    for _ in range(n // 5):  # negatives only
        r = Record()
        for _ in range(m.rng.randint(1, 3)):
            negative(m, r)
        out.append(r.dump())
    return out


def covered(found, gold) -> bool:
    overlap = max(0, min(found.end, gold["end"]) - max(found.start, gold["start"]))
    length = gold["end"] - gold["start"]
    return overlap >= 0.9 * length and (found.end - found.start) <= 1.5 * length + 3


def evaluate(records: list[dict], show: bool = False) -> dict:
    tp, fp, fn = Counter(), Counter(), Counter()
    misses = []
    started = time.perf_counter()
    for record in records:
        findings = scan(record["text"])
        used = set()
        for gold in record["spans"]:
            match = next((i for i, f in enumerate(findings) if i not in used and f.type == gold["type"]
                          and covered(f, gold)), None)
            if match is None:
                fn[gold["type"]] += 1
                misses.append(("missed", gold["type"], gold["value"], record["text"][:160]))
            else:
                used.add(match)
                tp[gold["type"]] += 1
        for i, f in enumerate(findings):
            if i not in used:
                fp[f.type] += 1
                misses.append(("false", f.type, f.value, record["text"][:160]))
    elapsed = time.perf_counter() - started
    by_type = {}
    for kind in TYPES:
        p = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        r = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        by_type[kind] = {"precision": round(p, 3), "recall": round(r, 3), "tp": tp[kind], "fp": fp[kind],
                         "fn": fn[kind]}
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    by_type["OVERALL"] = {"precision": round(total_tp / max(1, total_tp + total_fp), 3),
                          "recall": round(total_tp / max(1, total_tp + total_fn), 3),
                          "tp": total_tp, "fp": total_fp, "fn": total_fn}
    if show:
        for miss in misses[:60]:
            print("  ", miss)
    return {"by_type": by_type, "records": len(records), "records_per_s": round(len(records) / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=["dev", "heldout", "both"], default="both")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {}
    for family in (["dev", "heldout"] if args.family == "both" else [args.family]):
        records = generate(family)
        (RESULTS / f"pii_hard_forms_{family}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        result = evaluate(records, args.show_misses)
        report[family] = result
        print(f"\n{family}: {result['records']} records, {result['records_per_s']:,} records/s")
        print(f"{'type':<16}{'precision':>10}{'recall':>9}{'tp':>6}{'fp':>5}{'fn':>5}")
        for kind, row in result["by_type"].items():
            print(f"{kind:<16}{row['precision']:>10.3f}{row['recall']:>9.3f}{row['tp']:>6}{row['fp']:>5}{row['fn']:>5}")
    (RESULTS / "pii_hard_forms.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwritten {RESULTS / 'pii_hard_forms.json'}")


if __name__ == "__main__":
    main()
