"""Structure-aware chunking: each chunk keeps its section path; table rows are never split.

Blocks are packed into chunks of about `target_chars`, starting a new chunk at each heading
of the top levels so a chunk rarely spans two sections; the last block of a chunk is
repeated at the start of the next (overlap) unless it is a heading or table row.
"""

from __future__ import annotations

from dataclasses import dataclass

from hanchang.knowledge.parsers.base import Block, BlockKind, ParsedDocument

TARGET_CHARS = 800
MAX_CHARS = 1600
OVERLAP_CHARS = 200


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    section: str  # e.g. "3. 초거대 AI 도입 절차 > 3.2.1 데이터 보안 등급"
    page: int | None


def _split_long(text: str, limit: int) -> list[str]:
    """Split an over-long paragraph at sentence ends, then at spaces."""
    if len(text) <= limit:
        return [text]
    pieces, current = [], ""
    for sentence in text.replace(". ", ".\u0000").replace("다 ", "다\u0000").split("\u0000"):
        if current and len(current) + len(sentence) + 1 > limit:
            pieces.append(current)
            current = ""
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def chunk_document(doc: ParsedDocument, target_chars: int = TARGET_CHARS) -> list[ChunkDraft]:
    drafts: list[ChunkDraft] = []
    path: list[tuple[int, str]] = []  # (level, heading)
    current: list[Block] = []
    size = 0

    def section() -> str:
        return " > ".join(h for _, h in path)

    def emit(carry_over: bool) -> None:
        nonlocal current, size
        body = [b for b in current if b.kind is not BlockKind.HEADING or len(current) == 1]
        if body:
            page = next((b.page for b in current if b.page is not None), None)
            text = "\n".join(b.text for b in current).replace("\x00", "")  # PostgreSQL text holds no NUL
            drafts.append(ChunkDraft(len(drafts), text, section().replace("\x00", ""), page))
        last = current[-1] if current else None
        if carry_over and last is not None and last.kind is BlockKind.PARAGRAPH \
                and len(last.text) <= OVERLAP_CHARS:
            current, size = [last], len(last.text)
        else:
            current, size = [], 0

    for block in doc.blocks:
        if block.kind is BlockKind.HEADING:
            if current:
                emit(carry_over=False)
            level = block.level or 1
            path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, block.text)]
            continue
        pieces = _split_long(block.text, MAX_CHARS) if block.kind is not BlockKind.TABLE_ROW \
            else [block.text]
        for piece in pieces:
            piece_block = Block(block.kind, piece, block.level, block.page, block.table)
            if current and size + len(piece) > target_chars:
                emit(carry_over=block.kind is not BlockKind.TABLE_ROW)
            current.append(piece_block)
            size += len(piece)
    if current:
        emit(carry_over=False)
    return drafts
