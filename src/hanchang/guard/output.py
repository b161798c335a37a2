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
        self._pending: dict[int, str] = {}  # text held back, by choice index (n > 1 interleaves)
        self._fragments: dict[tuple[int, int], str] = {}  # tool-call arguments held back, by (choice, call)

    def apply(self, text: str) -> str:
        if self.vault is not None:
            text = self.vault.restore(text)
        text, removed = neutralise_links(text, self.allowed_links)
        self.links_removed += removed
        return text

    def restore(self, text: str) -> str:
        """Placeholders back to real values (for tool-call arguments: no link rewriting)."""
        return self.vault.restore(text) if self.vault is not None else text

    def feed_fragment(self, index: int, piece: str, choice: int = 0) -> str:
        """Streamed tool-call arguments: hold back a placeholder that may still be arriving."""
        key = (choice, index)
        pending = self._fragments.get(key, "") + piece
        opened = pending.rfind("[")
        if opened >= 0 and "]" not in pending[opened:] and len(pending) - opened < _PLACEHOLDER_MAX:
            ready, self._fragments[key] = pending[:opened], pending[opened:]
        else:
            ready, self._fragments[key] = pending, ""
        return self.restore(ready)

    def flush_fragments(self, choice: int = 0) -> list[dict]:
        """What is still held of one choice's calls' arguments, as tool-call deltas."""
        held = [{"index": i, "function": {"arguments": self.restore(text)}}
                for (c, i), text in self._fragments.items() if c == choice and text]
        self._fragments = {key: text for key, text in self._fragments.items() if key[0] != choice}
        return held

    def held_choices(self) -> list[int]:
        """The choices that still hold text or tool-call arguments back."""
        return sorted({c for c, text in self._pending.items() if text}
                      | {c for (c, _), text in self._fragments.items() if text})

    def feed(self, delta: str, choice: int = 0) -> str:
        """Streamed text in, safe text out; a word still being written is held back,
        since a placeholder or link may arrive split across chunks."""
        pending = self._pending.get(choice, "") + delta
        cut = max(pending.rfind(" "), pending.rfind("\n"))
        if cut < 0 and len(pending) < _HOLD_LIMIT:
            self._pending[choice] = pending
            return ""
        cut = len(pending) if cut < 0 else cut + 1
        ready, self._pending[choice] = pending[:cut], pending[cut:]
        return self.apply(ready)

    def flush(self, choice: int = 0) -> str:
        ready = self._pending.pop(choice, "")
        return self.apply(ready) if ready else ""
