"""The Korean personal-data guard on the spellings real forms use: full-width and Hangul digits,
+82, numbers split by spaces, dots, slashes, line breaks, dashes of every kind and table cells;
names and addresses; a 법인등록번호 that is not a person's. Masking replaces exactly the original
characters, and what an external model receives is proved by its own recording."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from hanchang.guard import recognizers
from hanchang.guard.pii import scan
from hanchang.guard.vault import PseudonymVault

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

RRN = "900101-1234568"  # a valid check digit


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, f.value) for f in scan(text)]


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("주민등록번호 ９００１０１－１２３４５６８ 입니다", "RRN", "９００１０１－１２３４５６８"),
    ("주민번호 900101.1234568", "RRN", "900101.1234568"),
    ("| 주민등록번호 | 900101 | 1234568 |", "RRN", "900101 | 1234568"),
    ("주민등록번호\n900101\n1234568", "RRN", "900101\n1234568"),
    ("연락처 공일공-일이삼사-오육칠팔 로 주세요", "PHONE", "공일공-일이삼사-오육칠팔"),
    ("휴대폰 +82 10-1234-5678", "PHONE", "+82 10-1234-5678"),
    ("+82-10-2345-6789로 연락", "PHONE", "+82-10-2345-6789"),
    ("전화 010 . 1234 . 5678", "PHONE", "010 . 1234 . 5678"),
    ("전화 010/1234/5678", "PHONE", "010/1234/5678"),
    ("전화 010–1234–5678 (en dash)", "PHONE", "010–1234–5678"),
    ("전화 010‐1234‐5678 (U+2010)", "PHONE", "010‐1234‐5678"),
    ("전화 010 1234 5678", "PHONE", "010 1234 5678"),
    ("메일 ｋｉｍ＠ｍｏｉｓ．ｇｏ．ｋｒ", "EMAIL", "ｋｉｍ＠ｍｏｉｓ．ｇｏ．ｋｒ"),
    ("메일 kim [at] mois.go.kr", "EMAIL", "kim [at] mois.go.kr"),
    ("사업자등록번호 220-81-62517", "BRN", "220-81-62517"),
    ("사업자 번호 220 81 62517", "BRN", "220 81 62517"),
    ("외국인등록번호 850315 5123453", "FRN", "850315 5123453"),
    ("성명: 홍길동 (남, 45세)", "NAME", "홍길동"),
    ("| 신청인 | 김민수 |", "NAME", "김민수"),
    ("박영희 님께서 방문하셨습니다", "NAME", "박영희"),
    ("담당자 이서연 주무관", "NAME", "이서연"),
    ("주소: 서울특별시 종로구 세종대로 209, 3층", "ADDRESS", "서울특별시 종로구 세종대로 209, 3층"),
    ("경기도 성남시 분당구 판교역로 235 101동 1502호로 보내 주세요", "ADDRESS",
     "경기도 성남시 분당구 판교역로 235 101동 1502호"),
    ("현주소 부산광역시 해운대구 우동 1234-5", "ADDRESS", "부산광역시 해운대구 우동 1234-5"),
])
def test_every_spelling_is_found_with_its_original_characters(text, kind, value):
    assert (kind, value) in found(text)


@pytest.mark.parametrize("text", [
    "법인등록번호 110111-1234567인 법인의 등기를 확인함",
    "법인 등록번호: 110111 1234567 (주식회사 한창)",
    "주문번호 2208162517 확인",
    "접수일 2026.12.05, 문서번호 행정안전부-1234, 우편번호 03171",
    "예산 1,234,567,890원을 배정하고 「개인정보 보호법」 제15조 제1항에 따른다",
    "주문번호 823408285317 확인",
    "데이터 책임자 제도를 도입하고 인프라를 담당하는 기관",
    "고객님께 안내하겠습니다. 여러분의 협조를 부탁드립니다.",
    "연구 결과로 3건의 개선안을 도출했다",
])
def test_numbers_and_words_that_are_not_personal_data(text):
    assert found(text) == []


def test_masking_replaces_exactly_the_original_characters():
    text = "신청인 김민수의 번호는 ０１０－１２３４－５６７８이고 주민번호 900101 | 1234568 입니다."
    findings = scan(text)
    masked = PseudonymVault().replace(text, findings)
    assert masked == "신청인 [이름1]의 번호는 [전화번호1]이고 주민번호 [주민등록번호1] 입니다."


def test_several_recognizers_of_one_type_are_all_kept():
    keys = [r.key for r in recognizers.all_recognizers()]
    assert len(keys) == len(set(keys))
    assert sum(1 for r in recognizers.all_recognizers() if r.type == "BRN") == 2
    assert found("사업자등록번호 220-81-62517") == [("BRN", "220-81-62517")]  # the hyphenated one, as before
    assert found("사업자등록번호 2208162517") == [("BRN", "2208162517")]


def test_the_hard_form_sets_stay_above_the_goal():
    """Both families of the benchmark's form layouts: recall and precision ≥ 0.95 for every type."""
    import pii_hard_forms

    for family in ("dev", "heldout"):
        result = pii_hard_forms.evaluate(pii_hard_forms.generate(family, 120))
        for kind, row in result["by_type"].items():
            assert row["recall"] >= 0.95 and row["precision"] >= 0.95, (family, kind, row)


def test_a_full_width_rrn_never_reaches_an_external_model(platform_factory, upstreams):
    _, external = upstreams
    platform = platform_factory({"models": [
        {"name": "ext", "backend": "openai", "base_url": external.base_url, "zone": "external", "max_grade": "O"}]})
    question = ("아래 신청서를 요약해 줘.\n| 성명 | 홍길동 |\n| 주민등록번호 | ９００１０１－１２３４５６８ |\n"
                "| 연락처 | 공일공 일이삼사 오육칠팔 |\n| 주소 | 서울특별시 종로구 세종대로 209 |")
    answer = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=30, json={
        "model": "ext", "messages": [{"role": "user", "content": question}]})
    assert answer.status_code == 200, answer.text
    seen = json.dumps(external.behaviour.received, ensure_ascii=False)
    for secret in ("９００１０１", "1234568", "공일공 일이삼사", "홍길동", "세종대로 209"):
        assert secret not in seen
    assert "[주민등록번호1]" in seen and "[이름1]" in seen and "[주소1]" in seen
    assert "홍길동" in answer.json()["choices"][0]["message"]["content"]  # restored for the user
