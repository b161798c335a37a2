"""Parsers on the real sample files (../shared/samples) and on files the tests make."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from conftest import SHARED, needs_shared
from hanchang.knowledge.parsers import (
    BlockKind,
    DamagedDocument,
    EncryptedDocument,
    UnsupportedDocument,
    detect_format,
    parse,
)

SAMPLES = SHARED / "samples"
HWP, HWPX = SAMPLES / "hwp", SAMPLES / "hwpx"
# Control ids (secd, cold, tbl …) misread as text: their bytes decoded as UTF-16 give CJK
# ideographs such as 捤獥汤捯.
CONTROL_IDS = ["secd", "cold", "tbl ", "gso ", "head", "foot", "fn  ", "en  ", "atno", "nwno", "pgct",
               "pghd", "pgnp", "eqed", "%hlk", "%dte", "bokm", "idxm", "tcmt", "tdut"]
GARBAGE = re.compile("|".join(re.escape(c[::-1].encode("latin-1").decode("utf-16-le")[:1])
                              + re.escape(c[::-1].encode("latin-1").decode("utf-16-le")[1:])
                              for c in CONTROL_IDS))


def kinds(doc, kind):
    return [b.text for b in doc.blocks if b.kind is kind]


@needs_shared
@pytest.mark.parametrize("path", sorted(HWP.glob("*.hwp")), ids=lambda p: p.name)
def test_no_hwp_sample_reads_as_garbage(path):
    if path.name in ("password-12345.hwp", "viewtext.hwp"):
        pytest.skip("encrypted; see below")
    doc = parse(path)
    assert not GARBAGE.search(doc.text), doc.text[:200]


@needs_shared
def test_hwp_body_tables_and_controls():
    doc = parse(HWP / "sample-5017.hwp")
    assert "본 문서는 한글 워드 프로세서의 파일 저장 형식 중" in doc.text
    assert "| A1 | B10 B11 |" in kinds(doc, BlockKind.TABLE_ROW)
    assert doc.parser == "hwp"


@needs_shared
def test_hwp_notes_headers_and_text_boxes():
    notes = kinds(parse(HWP / "footnote-endnote.hwp"), BlockKind.NOTE)
    assert "[각주] 각주입니다." in notes and "[미주] 미주 두 번째입니다." in notes
    header_footer = kinds(parse(HWP / "headerfooter.hwp"), BlockKind.NOTE)
    assert any(n.startswith("[머리말]") for n in header_footer)
    assert any(n.startswith("[꼬리말]") for n in header_footer)
    assert "글상자" in parse(HWP / "textbox.hwp").text


@needs_shared
@pytest.mark.parametrize(("name", "words"), [("password-12345.hwp", "암호가 걸린 문서"),
                                             ("viewtext.hwp", "배포용 문서")])
def test_encrypted_hwp_is_reported_by_name(name, words):
    with pytest.raises(EncryptedDocument) as info:
        parse(HWP / name)
    assert name in info.value.message_ko and words in info.value.message_ko


@needs_shared
def test_hwpx_without_manifest():
    doc = parse(HWPX / "error__20240626__no_manifest.hwpx")
    assert doc.parser == "hwpx" and "입 법 예 고" in doc.text
    assert "1. 개정이유" in kinds(doc, BlockKind.HEADING)


@needs_shared
def test_hwpx_tables_stay_rows():
    rows = kinds(parse(HWPX / "note_example.hwpx"), BlockKind.TABLE_ROW)
    assert "| 동아리명 | 21C 가우디 | 구분 | 창체 |" in rows


@needs_shared
@pytest.mark.parametrize("path", sorted(HWPX.glob("*.hwpx")), ids=lambda p: p.name)
def test_every_hwpx_sample_parses(path):
    if path.name == "password-12345.hwpx":
        with pytest.raises(EncryptedDocument) as info:
            parse(path)
        assert "암호가 걸린 문서" in info.value.message_ko and path.name in info.value.message_ko
        return
    assert parse(path).blocks


@needs_shared
def test_nested_hwp_tables_keep_their_own_cells():
    """A table inside a table cell must not leave the outer table pointing at its cell."""
    rows = kinds(parse(HWP / "nested-tables-basicsReport.hwp"), BlockKind.TABLE_ROW)
    assert "| 학번 | 200012345 |" in rows


def test_docx_headings_paragraphs_tables(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("개인정보 처리 지침", level=1)
    document.add_paragraph("제1조에 따라 개인정보를 처리한다.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "구분", "내용"
    table.cell(1, 0).text, table.cell(1, 1).text = "보관", "3년"
    path = tmp_path / "지침.docx"
    document.save(path)
    doc = parse(path)
    assert kinds(doc, BlockKind.HEADING) == ["개인정보 처리 지침"]
    assert kinds(doc, BlockKind.TABLE_ROW) == ["| 구분 | 내용 |", "| 보관 | 3년 |"]


def test_xlsx_and_cp949_csv_keep_tables(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "예산"
    book.active.append(["사업", "금액"])
    book.active.append(["챗봇", 9000])
    book.save(tmp_path / "예산.xlsx")
    assert kinds(parse(tmp_path / "예산.xlsx"), BlockKind.TABLE_ROW) == ["| 사업 | 금액 |", "| 챗봇 | 9000 |"]
    (tmp_path / "목록.csv").write_bytes("기관,담당자\n행정안전부,김주무관\n".encode("cp949"))
    assert kinds(parse(tmp_path / "목록.csv"), BlockKind.TABLE_ROW)[1] == "| 행정안전부 | 김주무관 |"


def test_euc_kr_text_and_markdown_and_html(tmp_path):
    notice = "3.2.1 데이터 보안 등급\n기밀, 민감, 공개로 나눈다.\n"
    (tmp_path / "공지.txt").write_bytes(notice.encode("euc-kr"))
    doc = parse(tmp_path / "공지.txt")
    assert doc.title == "공지" and kinds(doc, BlockKind.HEADING) == ["3.2.1 데이터 보안 등급"]
    (tmp_path / "a.md").write_text("# 제목\n\n본문\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    assert kinds(parse(tmp_path / "a.md"), BlockKind.TABLE_ROW) == ["| a | b |", "| 1 | 2 |"]
    (tmp_path / "p.html").write_text("<html><title>안내</title><h2>절차</h2><p>신청</p><script>x()</script>"
                                     "<table><tr><td>1</td><td>접수</td></tr></table></html>",
                                     encoding="utf-8")
    html = parse(tmp_path / "p.html")
    assert html.title == "안내" and "x()" not in html.text
    assert kinds(html, BlockKind.TABLE_ROW) == ["| 1 | 접수 |"]


def _pdf(path: Path, pages: list[str | None]) -> None:
    """A small real PDF; None makes a page without a text layer (like a scan); "\n" starts a line."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        if text is None:
            continue
        stream = DecodedStreamObject()
        lines = " ".join(f"({line}) Tj T*" for line in text.split("\n"))
        stream.set_data(f"BT /F1 12 Tf 72 720 Td 14 TL {lines} ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): font})})
    with path.open("wb") as handle:
        writer.write(handle)


def test_pdf_text_and_scanned_pages(tmp_path):
    _pdf(tmp_path / "report.pdf", ["Hanchang annual report", None, "Budget 2026"])
    doc = parse(tmp_path / "report.pdf")
    assert "Hanchang annual report" in doc.text and doc.blocks[-1].page == 3
    assert "2쪽" in doc.warnings[0]
    _pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(UnsupportedDocument, match="OCR"):
        parse(tmp_path / "scan.pdf")


def test_zip_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.hwpx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Contents/section0.xml", b"<a/>")
        with archive.open("Contents/padding.bin", "w") as entry:
            for _ in range(64):
                entry.write(b"\0" * (1 << 20))
    with pytest.raises(UnsupportedDocument, match="zip bomb"):
        parse(bomb)


@needs_shared
def test_type_is_sniffed_from_content(tmp_path):
    fake = tmp_path / "report.hwp"
    fake.write_text("not really hwp", encoding="utf-8")
    with pytest.raises(DamagedDocument, match="HWP"):
        parse(fake)
    renamed = tmp_path / "renamed.bin"
    renamed.write_bytes((HWPX / "note_example.hwpx").read_bytes())
    assert detect_format(renamed) == "hwpx"
    (tmp_path / "tool.exe").write_text("MZ", encoding="utf-8")
    with pytest.raises(UnsupportedDocument, match="지원하지 않는 형식"):
        parse(tmp_path / "tool.exe")


def test_pdf_text_without_a_character_map_is_recognised_as_unreadable():
    from hanchang.knowledge.parsers.office import _CONTROL, _readable

    assert _readable("공공부문 초거대 AI 도입 가이드라인 2025년 3월 행정안전부")
    glyphs = "\ue001\ue002\ue003 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \ue004\ue005" * 5
    assert not _readable(_CONTROL.sub("", glyphs) + "가나")
    assert _CONTROL.sub("", "보안\x00등급\x07") == "보안등급"


def test_chunks_never_carry_nul_characters():
    from hanchang.knowledge.chunking import chunk_document
    from hanchang.knowledge.parsers.base import Block, ParsedDocument

    doc = ParsedDocument(title="t", blocks=[Block(BlockKind.PARAGRAPH, "보안\x00등급은 세 가지이다.")], parser="txt")
    assert all("\x00" not in c.text for c in chunk_document(doc))


def test_running_page_headers_and_footers_are_not_text_or_title(tmp_path):
    pages = [f"Ministry of the Interior - Internal\nSection {n}: budget rules for year {2020 + n}.\n"
             f"The ceiling for item {n} is {n * 100} million won.\n- {n} -" for n in range(1, 5)]
    path = tmp_path / "report.pdf"
    _pdf(path, pages)
    doc = parse(path)
    assert doc.title.startswith("Section 1")
    assert "Ministry of the Interior" not in doc.text and "- 2 -" not in doc.text
    assert "The ceiling for item 3 is 300 million won." in doc.text
