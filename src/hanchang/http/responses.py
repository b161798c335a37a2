"""Responses the doors share: JSON rendered by orjson (fast, and UTF-8 Korean text stays readable),
and the headers of a file to download."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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


def download_headers(name: str) -> dict[str, str]:
    """A file to save as `name` (any characters, Korean too), never cached."""
    return {"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}", "cache-control": "no-store"}
