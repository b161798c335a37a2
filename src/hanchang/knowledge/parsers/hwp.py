"""HWP 5 (한글) binary documents: OLE2 with zlib-compressed record streams.

Text lives in PARA_TEXT records (tag 67) as UTF-16LE. Codes below 32 are controls: char
controls take one code unit, inline and extended controls take eight (the code, six units
of payload, the code again) and must be skipped whole, or their payload reads as CJK
garbage. Table cells, footnotes/endnotes, headers/footers and text boxes are nested
paragraph lists that follow their control in the same stream, so one pass in stream order
reads them in reading order. Written from the published HWP 5.0 format, not from pyhwp.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import olefile

from hanchang.knowledge.parsers.base import (
    Block,
    BlockKind,
    DamagedDocument,
    EncryptedDocument,
    ParsedDocument,
    UnsupportedDocument,
)
from hanchang.knowledge.parsers.headings import heading_level

SIGNATURE = b"HWP Document File"
TAG_PARA_HEADER = 66
TAG_PARA_TEXT = 67
TAG_CTRL_HEADER = 71
TAG_LIST_HEADER = 72
TAG_TABLE = 77

_CHAR_CONTROLS = {0, 10, 13, 24, 25, 26, 27, 28, 29, 30, 31}  # one code unit
_SKIP_UNITS = 8  # inline (4-9, 19, 20) and extended (1-3, 11, 12, 14-18, 21-23) controls
# Hancom writes the "한" of its product name 한글 as a private-use glyph.
_PRIVATE_USE = {0xF53A: "한"}
_NOTE_CONTROLS = {"fn  ": "각주", "en  ": "미주", "head": "머리말", "foot": "꼬리말"}


@dataclass
class _Record:
    tag: int
    level: int
    data: bytes


def _records(stream: bytes):
    offset, size_of = 0, len(stream)
    while offset + 4 <= size_of:
        (header,) = struct.unpack_from("<I", stream, offset)
        offset += 4
        tag, level, size = header & 0x3FF, (header >> 10) & 0x3FF, (header >> 20) & 0xFFF
        if size == 0xFFF:
            if offset + 4 > size_of:
                break
            (size,) = struct.unpack_from("<I", stream, offset)
            offset += 4
        yield _Record(tag, level, stream[offset:offset + size])
        offset += size


def para_text(data: bytes) -> str:
    """Decode a PARA_TEXT record, skipping controls properly."""
    units = struct.unpack(f"<{len(data) // 2}H", data[: len(data) // 2 * 2])
    out: list[str] = []
    i = 0
    while i < len(units):
        code = units[i]
        if code >= 32:
            out.append(_PRIVATE_USE.get(code, chr(code)))
            i += 1
        elif code in _CHAR_CONTROLS:
            if code in (10, 13):
                out.append("\n")
            elif code == 24:
                out.append("-")
            elif code in (30, 31):
                out.append(" ")
            i += 1
        else:
            if code == 9:
                out.append("\t")
            i += _SKIP_UNITS
    return "".join(out)


def _check_header(ole: olefile.OleFileIO, name: str) -> bool:
    """Validate the file header; returns whether the streams are compressed."""
    if not ole.exists("FileHeader"):
        raise DamagedDocument(f"'{name}'은(는) 한글(HWP) 문서가 아닙니다.", f"'{name}' is not an HWP file")
    header = ole.openstream("FileHeader").read()
    if not header.startswith(SIGNATURE):
        raise UnsupportedDocument(
            f"'{name}'은(는) HWP 5.0 형식이 아닙니다. 한글에서 HWP 5.0 또는 HWPX로 다시 저장해 주세요.",
            f"'{name}' is not HWP 5.0",
        )
    (flags,) = struct.unpack_from("<I", header, 36)
    if flags & 0x2:
        raise EncryptedDocument(
            f"'{name}'은(는) 암호가 걸린 문서라 읽을 수 없습니다. 암호를 해제한 뒤 다시 올려 주세요.",
            f"'{name}' is password-protected",
        )
    if flags & 0x4:
        raise EncryptedDocument(
            f"'{name}'은(는) 배포용 문서라 본문이 암호화되어 있습니다. 원본 문서를 올려 주세요.",
            f"'{name}' is a distribution-only document with an encrypted body",
        )
    return bool(flags & 0x1)


def _section_names(ole: olefile.OleFileIO) -> list[str]:
    sections = [e for e in ole.listdir() if len(e) == 2 and e[0] == "BodyText"
                and e[1].startswith("Section")]
    return ["/".join(e) for e in sorted(sections, key=lambda e: int(e[1][7:] or 0))]


def parse_hwp(path: Path, name: str | None = None) -> ParsedDocument:
    name = name or path.name
    try:
        ole = olefile.OleFileIO(str(path))
    except OSError as exc:
        raise DamagedDocument(f"'{name}'을(를) 열 수 없습니다. 파일이 손상되었을 수 있습니다.",
                              f"cannot open '{name}': {exc}") from exc
    with ole:
        compressed = _check_header(ole, name)
        blocks: list[Block] = []
        table_no = 0
        for section in _section_names(ole):
            raw = ole.openstream(section).read()
            try:
                stream = zlib.decompress(raw, -15) if compressed else raw
            except zlib.error as exc:
                raise DamagedDocument(f"'{name}'의 본문을 풀 수 없습니다. 파일이 손상되었습니다.",
                                      f"'{name}': cannot decompress {section}") from exc
            table_no = _read_section(stream, blocks, table_no)
    title = next((b.text for b in blocks if b.kind is not BlockKind.NOTE and b.text.strip()), name)
    return ParsedDocument(title=title[:200], blocks=blocks, parser="hwp")


def _read_section(stream: bytes, blocks: list[Block], table_no: int) -> int:
    # Context stack of open controls: (level, kind, state)
    stack: list[tuple[int, str, dict]] = []
    for record in _records(stream):
        while stack and record.level <= stack[-1][0]:
            _close(stack.pop(), blocks)
        if record.tag == TAG_CTRL_HEADER and len(record.data) >= 4:
            ctrl = record.data[:4][::-1].decode("latin-1")
            if ctrl == "tbl ":
                table_no += 1
                stack.append((record.level, "table", {"rows": {}, "no": table_no}))
            elif ctrl in _NOTE_CONTROLS:
                stack.append((record.level, "note", {"label": _NOTE_CONTROLS[ctrl], "parts": []}))
            elif ctrl == "gso ":
                stack.append((record.level, "note", {"label": "글상자", "parts": []}))
        elif record.tag == TAG_LIST_HEADER and stack and stack[-1][1] == "table" \
                and len(record.data) >= 12:
            col, row = struct.unpack_from("<HH", record.data, 8)
            # Each table remembers its own current cell: a table nested in a cell must not
            # leave its cell behind for the outer table's text that follows it.
            stack[-1][2]["cell"] = stack[-1][2]["rows"].setdefault(row, {}).setdefault(col, [])
        elif record.tag == TAG_PARA_TEXT:
            text = para_text(record.data).strip()
            if not text:
                continue
            owner = stack[-1] if stack else None
            if owner and owner[1] == "table" and owner[2].get("cell") is not None:
                owner[2]["cell"].append(text)
            elif owner and owner[1] == "note":
                owner[2]["parts"].append(text)
            else:
                for line in text.split("\n"):
                    if line.strip():
                        level = heading_level(line)
                        kind = BlockKind.HEADING if level else BlockKind.PARAGRAPH
                        blocks.append(Block(kind, line.strip(), level=level))
    while stack:
        _close(stack.pop(), blocks)
    return table_no


def _close(frame: tuple[int, str, dict], blocks: list[Block]) -> None:
    _, kind, state = frame
    if kind == "table":
        for row in sorted(state["rows"]):
            cells = state["rows"][row]
            line = " | ".join(" ".join(cells[c]).replace("\n", " ") for c in sorted(cells))
            if line.strip(" |"):
                blocks.append(Block(BlockKind.TABLE_ROW, f"| {line} |", table=state["no"]))
    elif kind == "note" and state["parts"]:
        blocks.append(Block(BlockKind.NOTE, f"[{state['label']}] " + " ".join(state["parts"])))
