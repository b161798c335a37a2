"""HWPX (한글 OWPML): a zip of XML. Read directly, so files without a manifest work too."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

from hanchang.knowledge.parsers.base import Block, BlockKind, DamagedDocument, EncryptedDocument, ParsedDocument
from hanchang.knowledge.parsers.headings import heading_level
from hanchang.knowledge.parsers.ziputil import open_zip

_SECTION = re.compile(r"^Contents/section(\d+)\.xml$", re.IGNORECASE)
_NOTES = {"footNote": "각주", "endNote": "미주", "header": "머리말", "footer": "꼬리말"}
_CONTAINERS = {"tbl", "subList", "footNote", "endNote", "header", "footer", "drawText"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _own_text(paragraph: ElementTree.Element) -> str:
    """Text of a paragraph's runs, not of tables or notes nested in it."""
    parts: list[str] = []

    def walk(node: ElementTree.Element) -> None:
        for child in node:
            name = _local(child.tag)
            if name in _CONTAINERS:
                continue
            if name == "t":
                parts.append(child.text or "")
                for inner in child:  # <hp:tab/>, <hp:lineBreak/> … with tails
                    parts.append("\t" if _local(inner.tag) == "tab" else " ")
                    parts.append(inner.tail or "")
            else:
                walk(child)

    walk(paragraph)
    return "".join(parts)


class _Reader:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.tables = 0

    def paragraph(self, p: ElementTree.Element) -> None:
        text = _own_text(p).strip()
        if text:
            level = heading_level(text)
            self.blocks.append(Block(BlockKind.HEADING if level else BlockKind.PARAGRAPH, text, level))
        self.nested(p)

    def nested(self, node: ElementTree.Element) -> None:
        for child in node:
            name = _local(child.tag)
            if name == "tbl":
                self.table(child)
            elif name in _NOTES:
                text = " ".join(_own_text(p).strip() for p in child.iter() if _local(p.tag) == "p")
                if text.strip():
                    self.blocks.append(Block(BlockKind.NOTE, f"[{_NOTES[name]}] {text.strip()}"))
            elif name == "p":
                self.paragraph(child)
            else:
                self.nested(child)

    def table(self, tbl: ElementTree.Element) -> None:
        self.tables += 1
        number = self.tables
        for tr in (c for c in tbl if _local(c.tag) == "tr"):
            cells = []
            for tc in (c for c in tr if _local(c.tag) == "tc"):
                texts = [_own_text(p).strip() for p in tc.iter() if _local(p.tag) == "p"]
                cells.append(" ".join(t for t in texts if t))
            if any(cells):
                self.blocks.append(Block(BlockKind.TABLE_ROW, "| " + " | ".join(cells) + " |",
                                         table=number))


def _encrypted(archive) -> bool:
    """A password-protected HWPX lists its encrypted parts in the ODF manifest (AES, PBKDF2)."""
    try:
        manifest = archive.read("META-INF/manifest.xml")
    except KeyError:
        return False
    return b"encryption-data" in manifest


def parse_hwpx(path: Path, name: str | None = None) -> ParsedDocument:
    name = name or path.name
    with open_zip(path, name) as archive:
        sections = sorted((int(m.group(1)), n) for n in archive.namelist()
                           if (m := _SECTION.match(n)))
        if not sections:
            raise DamagedDocument(f"'{name}'에 본문(Contents/section*.xml)이 없습니다.",
                                  f"'{name}' has no Contents/section*.xml")
        if _encrypted(archive):
            raise EncryptedDocument(
                f"'{name}'은(는) 암호가 걸린 문서라 읽을 수 없습니다. 암호를 해제한 뒤 다시 올려 주세요.",
                f"'{name}' is password-protected")
        reader = _Reader()
        for _, section in sections:
            try:
                root = ElementTree.fromstring(archive.read(section))
            except ElementTree.ParseError as exc:
                raise DamagedDocument(f"'{name}'의 {section}이(가) 손상되었습니다.",
                                      f"'{name}': {section} is not valid XML") from exc
            reader.nested(root)
    title = next((b.text for b in reader.blocks if b.kind is not BlockKind.NOTE), name)
    return ParsedDocument(title=title[:200], blocks=reader.blocks, parser="hwpx")
