"""A JSON response rendered by orjson (fast, and UTF-8 Korean text stays readable)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any = None, status_code: int = 200, headers: dict | None = None, **kwargs):
        # API answers hold agency data: never cached by a browser or proxy, never sniffed as HTML.
        super().__init__(content, status_code, {**NO_STORE, **(headers or {})}, **kwargs)

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
