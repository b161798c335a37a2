"""The door's first check: request size and NUL characters, before anything parses the body."""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException

from hanchang.http.errors import error_response

NUL_MESSAGE = ("요청에 NUL 문자(\\u0000)가 들어 있어 처리할 수 없습니다. 지우고 다시 보내 주세요. "
               "(The request contains a NUL character, which no text field may hold; remove it.)")


class BodySizeLimit:
    """Refuse bodies over the configured size: by Content-Length before reading, and by the bytes
    actually read for bodies sent without one (chunked), so no body past the limit is accepted.
    Also refuse NUL characters outside file uploads: no text field may hold one (PostgreSQL
    cannot store it), so they are turned away at the door with a 400 instead of failing deep inside."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"Request body is larger than {self.max_bytes:,} bytes. Send less."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = error_response(413, self._too_large(), "invalid_request_error", "request_too_large")
                await response(scope, receive, send)
                return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await error_response(400, NUL_MESSAGE, "invalid_request_error", "invalid_request")(scope, receive, send)
            return
        received = 0
        kind = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
        binary = kind.startswith(b"multipart/")  # files may hold NULs
        nul_forms = (b"\x00", b"\\u0000", b"%00") if kind.startswith(b"application/x-www-form") \
            else (b"\x00", b"\\u0000")
        tail = b""

        async def counted():
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_bytes:  # answered 413 by the HTTP exception handler
                    raise StarletteHTTPException(413, self._too_large())
                window, tail = tail + body, body[-6:]
                if not binary and any(form in window for form in nul_forms):
                    raise StarletteHTTPException(400, NUL_MESSAGE)
            return message

        await self.app(scope, counted, send)
