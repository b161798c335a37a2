"""What every backend offers: OpenAI-shaped chat, streamed chat and embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class Backend(Protocol):
    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A whole `chat.completion` object."""
        ...

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """`chat.completion.chunk` objects; the last one carries `usage` when known."""
        ...

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
