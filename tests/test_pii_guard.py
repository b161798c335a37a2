"""Korean personal-data recognizers, masking and the output guard, on cases beyond the dev set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hanchang.core.pii_modes import PiiMode
from hanchang.guard.checksums import brn_checksum_ok, luhn_ok, rrn_checksum_ok
from hanchang.guard.links import REMOVED, known_links, neutralise_links
from hanchang.guard.output import OutputGuard
from hanchang.guard.pii import scan
from hanchang.guard.request_guard import PersonalDataBlocked, guard_request
from hanchang.guard.vault import PseudonymVault


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, f.value) for f in scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("주민등록번호 800101-1234568 확인", [("RRN", "800101-1234568")]),
        ("신청인의 주민번호는 8001011234568이며", [("RRN", "8001011234568")]),  # particle glued on
        # Issued after Oct 2020: the check digit is random, so it must not be rejected.
        ("주민등록번호 210315-3456781 (신생아)", [("RRN", "210315-3456781")]),
        ("외국인등록번호 850505-5123456을 확인", [("FRN", "850505-5123456")]),
        ("연락처 010.1234.5678", [("PHONE", "010.1234.5678")]),
        ("연락처 010 1234 5678 로", [("PHONE", "010 1234 5678")]),
        ("대표 02-123-4567, 세종 044-200-1234", [("PHONE", "02-123-4567"), ("PHONE", "044-200-1234")]),
        ("인터넷전화 070-4321-8765", [("PHONE", "070-4321-8765")]),
        ("메일은 hong.gildong+work@mois.go.kr로", [("EMAIL", "hong.gildong+work@mois.go.kr")]),
        ("여권 M12345678 및 신여권 M123A4567", [("PASSPORT", "M12345678"), ("PASSPORT", "M123A4567")]),
        ("운전면허 11-19-123456-01 정지", [("DRIVER_LICENSE", "11-19-123456-01")]),
        ("카드 4111 1111 1111 1111 결제", [("CARD", "4111 1111 1111 1111")]),
        ("국민은행 계좌 123456-78-901234 로 송금", [("ACCOUNT", "123456-78-901234")]),
        # Cases from other projects' Korean PII tests (found missed or mislabelled):
        ("안심번호 0507-1234-5678로 연락", [("PHONE", "0507-1234-5678")]),
        ("0508 4321 8765 안심번호", [("PHONE", "0508 4321 8765")]),
        ("국민은행 고객센터 010-1234-5678", [("PHONE", "010-1234-5678")]),
        ("사업자등록번호 2208162517 입니다", [("BRN", "2208162517")]),
        ("운전면허번호 28 22 123456 12 확인", [("DRIVER_LICENSE", "28 22 123456 12")]),
    ],
)
def test_detects(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025년 8월 7일 회의, 예산 1,234,567,890원",
        "문서번호 제2025-1234호, 2025.09.15. 개최",
        "ISBN 978-89-1234-567-8 도서",
        "대표전화 1588-2100, 민원 110번",
        "버전 3.2.1-2025, 빌드 20251122-001",
        "주민번호 801301-1234567",  # month 13: not a date
        "주민번호 800230-1234567",  # 30 February
        "사업자등록번호 123-45-67890",  # wrong check digit
        "카드 4111 1111 1111 1112",  # fails Luhn
        "번호 123-456-789012 입니다",  # account shape, but no account context
        "좌석 A-12, 10:00-12:00, 25명",
    ],
)
def test_leaves_non_personal_numbers(text):
    assert found(text) == []


def test_checksums():
    assert rrn_checksum_ok("8001011234560") and not rrn_checksum_ok("8001011234567")
    assert brn_checksum_ok("2208162517") and not brn_checksum_ok("2208162516")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_context_words_raise_confidence():
    bare = scan("값 M12345678")[0]
    with_context = scan("여권번호 M12345678")[0]
    assert with_context.score > bare.score


def test_offsets_point_at_the_value():
    text = "연락처: 010-2222-3333입니다"
    (finding,) = scan(text)
    assert text[finding.start:finding.end] == "010-2222-3333"


def test_pseudonymize_and_restore_with_stable_numbering():
    vault = PseudonymVault()
    text = "010-1111-2222 그리고 kim@korea.kr, 다시 010-1111-2222, 또 010-3333-4444"
    masked = vault.replace(text, scan(text))
    assert masked == "[전화번호1] 그리고 [이메일1], 다시 [전화번호1], 또 [전화번호2]"
    assert vault.restore(masked) == text
    assert vault.restore("[전화번호9] stays") == "[전화번호9] stays"


def test_guard_modes():
    body = {"messages": [{"role": "system", "content": "공문 작성 도우미"},
                         {"role": "user", "content": [{"type": "text", "text": "주민번호 800101-1234568"}]}]}
    allowed = guard_request(body, PiiMode.ALLOW, "m")
    assert allowed.body is body and allowed.counts == {"RRN": 1}
    masked = guard_request(body, PiiMode.MASK, "m")
    assert masked.vault is None and "800101" not in json.dumps(masked.body, ensure_ascii=False)
    assert body["messages"][1]["content"][0]["text"] == "주민번호 800101-1234568"  # caller's copy untouched
    pseudo = guard_request(body, PiiMode.PSEUDONYMIZE, "m")
    assert pseudo.vault.restore("[주민등록번호1]") == "800101-1234568"
    with pytest.raises(PersonalDataBlocked, match="주민등록번호 1건"):
        guard_request(body, PiiMode.BLOCK, "ext")


def test_links_not_in_sources_are_neutralised():
    allowed = known_links("출처: https://www.law.go.kr/법령/개인정보보호법")
    text, removed = neutralise_links(
        "근거는 https://www.law.go.kr/법령/개인정보보호법. 자세히는 http://phish.example/login 참고", allowed)
    assert "https://www.law.go.kr/법령/개인정보보호법." in text and REMOVED in text
    assert "phish" not in text and removed == 1


def test_stream_guard_restores_placeholders_split_across_chunks():
    vault = PseudonymVault()
    vault.replace("010-1234-5678", scan("010-1234-5678"))
    guard = OutputGuard(vault, set())
    pieces = ["연락처는 [전화", "번호1]입니다. 링크 https://ev", "il.example 끝"]
    out = "".join(guard.feed(p) for p in pieces) + guard.flush()
    assert out == f"연락처는 010-1234-5678입니다. 링크 {REMOVED} 끝"


def run_cli(*args, stdin: str):
    return subprocess.run([sys.executable, "-m", "hanchang", *args], input=stdin, text=True,
                          capture_output=True, timeout=60)


def test_cli_scan_contract(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "연락처 010-1234-5678"}, ensure_ascii=False) + "\n"
                      + json.dumps({"text": "해당 없음"}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = run_cli("pii", "scan", "--jsonl", str(source), stdin="")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first == {"text": "연락처 010-1234-5678",
                     "findings": [{"type": "PHONE", "start": 4, "end": 17, "value": "010-1234-5678"}]}
    assert second["findings"] == []


def test_cli_scan_bad_line_names_it(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\nnot json\n', encoding="utf-8")
    result = run_cli("pii", "scan", "--jsonl", str(source), stdin="")
    assert result.returncode == 1 and "in.jsonl:2" in result.stderr


def test_cli_mask():
    result = run_cli("pii", "mask", stdin="김 010-1234-5678\n이 kim@korea.kr, 010-1234-5678\n")
    assert result.stdout == "김 [전화번호1]\n이 [이메일1], [전화번호1]\n"


def test_foreigner_numbers_use_their_own_check_digit():
    from hanchang.guard.checksums import frn_checksum_ok

    assert frn_checksum_ok("9001015123452") and not frn_checksum_ok("9001015123450")
    strong = next(f for f in scan("외국인등록번호 900101-5123452") if f.type == "FRN")
    weak = next(f for f in scan("외국인등록번호 900101-5123450") if f.type == "FRN")
    assert strong.score > weak.score  # a valid FRN check digit raises confidence; the RRN formula's does not


def test_a_bare_ten_digit_number_is_not_a_brn_without_its_label():
    assert found("주문번호 2208162517 확인") == []
