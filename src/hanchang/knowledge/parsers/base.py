"""What every parser returns, and the errors it may raise (with a Korean message)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class BlockKind(str, Enum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    TABLE_ROW = "table_row"  # never split across chunks
    NOTE = "note"  # footnote, endnote, header, footer, text box


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    level: int = 0  # heading depth (1 = top)
    page: int | None = None
    table: int | None = None  # which table a row belongs to


@dataclass
class ParsedDocument:
    title: str
    blocks: list[Block]
    parser: str
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. scanned pages without text
    ocr_pages: list[int] = field(default_factory=list)  # pages read by OCR (citations say so)

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


@dataclass(frozen=True)
class ParserPlugin:
    """A document format a plugin adds (`hanchang.parsers`; the entry-point name is its kind):
    the file extensions it claims and `parse(path, name) -> ParsedDocument`."""

    extensions: tuple[str, ...]  # e.g. (".odt",)
    parse: Callable[[Path, str | None], ParsedDocument]


class DocumentError(Exception):
    """A document cannot be ingested; `message_ko` tells the user why and what to do."""

    def __init__(self, message_ko: str, message_en: str):
        super().__init__(f"{message_ko} ({message_en})")
        self.message_ko = message_ko
        self.message_en = message_en


class EncryptedDocument(DocumentError):
    pass


class UnsupportedDocument(DocumentError):
    pass


class DamagedDocument(DocumentError):
    pass
