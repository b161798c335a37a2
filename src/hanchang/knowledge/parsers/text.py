"""Plain text and Markdown, in UTF-8 or the Korean legacy encodings (CP949 ⊃ EUC-KR)."""

from __future__ import annotations

import re
from pathlib import Path

from hanchang.knowledge.parsers.base import Block, BlockKind, ParsedDocument, UnsupportedDocument
from hanchang.knowledge.parsers.headings import heading_level, numbered_rows

_ENCODINGS = ("utf-8-sig", "cp949")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}")


def read_text(path: Path, name: str) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise UnsupportedDocument(f"'{name}'은(는) 텍스트 파일이 아닙니다.", f"'{name}' is binary")
    for encoding in _ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnsupportedDocument(
        f"'{name}'의 글자 인코딩을 알 수 없습니다. UTF-8로 저장해 다시 올려 주세요.",
        f"'{name}' is neither UTF-8 nor CP949/EUC-KR",
    )


def blocks_from_lines(lines: list[str], markdown: bool) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []
    table = 0
    in_table = False

    def flush() -> None:
        if paragraph:
            blocks.append(Block(BlockKind.PARAGRAPH, " ".join(paragraph)))
            paragraph.clear()

    rows = numbered_rows(lines) if not markdown else set()
    for number, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            flush()
            in_table = False
            continue
        md = _MD_HEADING.match(line) if markdown else None
        if md:
            flush()
            blocks.append(Block(BlockKind.HEADING, md.group(2), len(md.group(1))))
            continue
        if markdown and line.startswith("|"):
            flush()
            if _MD_TABLE_RULE.match(line):
                continue
            if not in_table:
                table, in_table = table + 1, True
            blocks.append(Block(BlockKind.TABLE_ROW, line, table=table))
            continue
        level = heading_level(line)
        if number in rows:  # a numbered table row: a paragraph of its own, never a section path
            flush()
            paragraph.append(line)
        elif level:
            flush()
            blocks.append(Block(BlockKind.HEADING, line, level))
        elif line.startswith(("- ", "● ", "◦ ", "○ ", "□ ", "* ", "• ", "※")):
            flush()
            paragraph.append(line)
        else:
            paragraph.append(line)
    flush()
    return blocks


def parse_text(path: Path, name: str | None = None) -> ParsedDocument:
    name = name or path.name
    lines = read_text(path, name).splitlines()
    blocks = blocks_from_lines(lines, markdown=False)
    # A plain-text file's name is a better title than its first line (often a page number).
    title = Path(name).stem.replace("_", " ").strip() or next((b.text for b in blocks), name)
    return ParsedDocument(title=title[:200], blocks=blocks, parser="text")


def parse_markdown(path: Path, name: str | None = None) -> ParsedDocument:
    name = name or path.name
    blocks = blocks_from_lines(read_text(path, name).splitlines(), markdown=True)
    title = next((b.text for b in blocks if b.kind is BlockKind.HEADING), name)
    return ParsedDocument(title=title[:200], blocks=blocks, parser="markdown")
