"""One error base for everything a user can be told: status, code, Korean and English text.

Every family (gateway, knowledge, accounts, services, connectors, templates) subclasses
`HanchangError`; the HTTP doors map it once (`http/errors.py`) to an OpenAI-shaped error
body, and the window shows `message` as it is. Korean comes first because civil servants
read it; the English half is for operators, SDK users and logs.
"""

from __future__ import annotations

# The OpenAI error `type` for a status, when a family does not name its own.
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class HanchangError(Exception):
    status = 400
    code = "invalid_request"
    type: str | None = None  # derived from the status unless a subclass names it
    message_ko_default = "요청을 처리하지 못했습니다."

    def __init__(self, message_ko: str | None = None, message_en: str = "", *,
                 param: str | None = None, headers: dict[str, str] | None = None):
        self.message_ko = message_ko or self.message_ko_default
        self.message_en = message_en
        self.param = param
        self.headers = dict(headers or {})
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """What the user reads: Korean, then the English in brackets."""
        if not self.message_en or self.message_en == self.message_ko:
            return self.message_ko
        return f"{self.message_ko} ({self.message_en})"

    @property
    def error_type(self) -> str:
        if self.type:
            return self.type
        if self.status >= 500:
            return "server_error"
        return _TYPES.get(self.status, "invalid_request_error")


class NotFound(HanchangError):
    """Also what a caller gets for another agency's thing: it never learns that it exists."""

    status, code = 404, "not_found"


class NotAllowed(HanchangError):
    status, code = 403, "not_allowed"


class AlreadyExists(HanchangError):
    status, code = 409, "already_exists"


class InvalidInput(HanchangError):
    status, code = 422, "invalid_request"
