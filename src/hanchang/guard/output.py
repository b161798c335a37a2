"""The output guard: restore pseudonyms and neutralise unknown links, whole or streamed."""

from __future__ import annotations

from hanchang.guard.links import neutralise_links
from hanchang.guard.vault import PseudonymVault

_HOLD_LIMIT = 256  # never hold back more than this many characters of a stream
_PLACEHOLDER_MAX = 24  # "[외국인등록번호12]" and the like are shorter


class OutputGuard:
    def __init__(self, vault: PseudonymVault | None, allowed_links: set[str]):
        self.vault = vault
        self.allowed_links = allowed_links
        self.links_removed = 0
        self._pending = ""
        self._fragments: dict[int, str] = {}  # tool-call arguments held back, by call index

    def apply(self, text: str) -> str:
        if self.vault is not None:
            text = self.vault.restore(text)
        text, removed = neutralise_links(text, self.allowed_links)
        self.links_removed += removed
        return text

    def restore(self, text: str) -> str:
        """Placeholders back to real values (for tool-call arguments: no link rewriting)."""
        return self.vault.restore(text) if self.vault is not None else text

    def feed_fragment(self, index: int, piece: str) -> str:
        """Streamed tool-call arguments: hold back a placeholder that may still be arriving."""
        pending = self._fragments.get(index, "") + piece
        opened = pending.rfind("[")
        if opened >= 0 and "]" not in pending[opened:] and len(pending) - opened < _PLACEHOLDER_MAX:
            ready, self._fragments[index] = pending[:opened], pending[opened:]
        else:
            ready, self._fragments[index] = pending, ""
        return self.restore(ready)

    def flush_fragments(self) -> list[dict]:
        """What is still held of each call's arguments, as tool-call deltas."""
        held = [{"index": i, "function": {"arguments": self.restore(text)}}
                for i, text in self._fragments.items() if text]
        self._fragments.clear()
        return held

    def feed(self, delta: str) -> str:
        """Streamed text in, safe text out; a word still being written is held back,
        since a placeholder or link may arrive split across chunks."""
        self._pending += delta
        cut = max(self._pending.rfind(" "), self._pending.rfind("\n"))
        if cut < 0 and len(self._pending) < _HOLD_LIMIT:
            return ""
        cut = len(self._pending) if cut < 0 else cut + 1
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self.apply(ready)

    def flush(self) -> str:
        ready, self._pending = self._pending, ""
        return self.apply(ready) if ready else ""
