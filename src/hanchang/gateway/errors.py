"""Typed gateway errors; the API maps each to one OpenAI-shaped HTTP error."""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class ClientClosed(GatewayError):
    """The caller went away mid-stream (pressed stop, closed the tab): recorded as 499."""

    status, code, type = 499, "client_closed", "client_error"

    def __init__(self, message: str = "client closed the stream"):
        super().__init__(message)


class ModelNotFound(GatewayError):
    status, code, type = 404, "model_not_found", "invalid_request_error"


class WrongModelKind(GatewayError):
    status, code, type = 400, "wrong_model_kind", "invalid_request_error"


class PolicyRefused(GatewayError):
    status, code, type = 403, "data_grade_refused", "permission_error"


class PersonalDataRefused(GatewayError):
    status, code, type = 403, "personal_data_blocked", "permission_error"


class UninspectableInput(GatewayError):
    """Input the personal-data guard cannot read (token ids) for a zone that needs it read."""

    status, code, type = 400, "input_not_inspectable", "invalid_request_error"


class UnsendableRequest(GatewayError):
    """The request cannot be serialised for an upstream (invalid Unicode, absurd nesting)."""

    status, code, type = 400, "invalid_request", "invalid_request_error"


class RateLimited(GatewayError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


class LimiterUnavailable(GatewayError):
    """The shared limiter cannot be reached: refuse rather than run unmetered (fail closed)."""

    status, code, type = 503, "rate_limiter_unavailable", "server_error"


class UpstreamUnavailable(GatewayError):
    """Connect error, timeout or 5xx after retries: the next fallback may be tried."""

    status, code, type = 503, "upstream_unavailable", "server_error"


class ModelRestarting(UpstreamUnavailable):
    """The embedded model's engine stopped (crash, hang) and is starting again: retry shortly."""

    code = "model_restarting"

    def __init__(self, model: str, retry_after_s: int, problem: str):
        super().__init__(
            f"내장 모델 '{model}'이(가) 멈춰 다시 시작하는 중입니다. {retry_after_s}초 뒤 다시 시도하세요. "
            f"(The model '{model}' stopped ({problem}) and is restarting; try again in {retry_after_s} s.)",
            headers={"Retry-After": str(retry_after_s)})


class UpstreamBadResponse(GatewayError):
    status, code, type = 502, "upstream_error", "server_error"


class UpstreamRejected(GatewayError):
    """The upstream refused the request itself (4xx): fallbacks would refuse it too."""

    code, type = "upstream_rejected", "invalid_request_error"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class LocalModelMissing(GatewayError):
    status, code, type = 503, "local_model_missing", "server_error"
