"""Typed gateway errors: each a `HanchangError` with its Korean sentence, mapped once to HTTP.

Raised with the English detail (`UpstreamUnavailable("Model 'x' is unavailable: timeout")`);
the class supplies the Korean a civil servant reads first. Errors whose text comes from the
policy or the personal-data guard are already Korean and English (`bilingual`).
"""

from __future__ import annotations

from hanchang.core.errors import HanchangError


class GatewayError(HanchangError):
    status = 500
    code = "internal_error"
    type = "server_error"
    bilingual = False  # the message given is already "Korean (English)"

    def __init__(self, message: str, *, param: str | None = None, headers: dict | None = None):
        if self.bilingual:
            super().__init__(message, "", param=param, headers=headers)
        else:
            super().__init__(None, message, param=param, headers=headers)


class ClientClosed(GatewayError):
    """The caller went away mid-stream (pressed stop, closed the tab): recorded as 499."""

    status, code, type = 499, "client_closed", "client_error"
    message_ko_default = "답변 도중 요청이 끊겼습니다."

    def __init__(self, message: str = "client closed the stream"):
        super().__init__(message)


class ModelNotFound(GatewayError):
    status, code, type = 404, "model_not_found", "invalid_request_error"
    message_ko_default = "요청한 모델이 없습니다. 모델 목록에서 고르세요."


class WrongModelKind(GatewayError):
    status, code, type = 400, "wrong_model_kind", "invalid_request_error"
    message_ko_default = "이 모델은 이 용도로 쓸 수 없습니다. 다른 모델을 고르세요."


class PolicyRefused(GatewayError):
    status, code, type = 403, "data_grade_refused", "permission_error"
    bilingual = True


class PersonalDataRefused(GatewayError):
    status, code, type = 403, "personal_data_blocked", "permission_error"
    bilingual = True


class UninspectableInput(GatewayError):
    """Input the personal-data guard cannot read (token ids) for a zone that needs it read."""

    status, code, type = 400, "input_not_inspectable", "invalid_request_error"
    bilingual = True


class UnsendableRequest(GatewayError):
    """The request cannot be serialised for an upstream (invalid Unicode, absurd nesting)."""

    status, code, type = 400, "invalid_request", "invalid_request_error"
    message_ko_default = "요청을 모델에 보낼 수 있는 형식으로 바꿀 수 없습니다. 내용을 확인하세요."


class RateLimited(GatewayError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"
    message_ko_default = "사용 한도에 도달했습니다. 잠시 뒤 다시 시도하세요."


class LimiterUnavailable(GatewayError):
    """The shared limiter cannot be reached: refuse rather than run unmetered (fail closed)."""

    status, code, type = 503, "rate_limiter_unavailable", "server_error"
    message_ko_default = "사용량 확인 장치에 연결할 수 없어 요청을 처리하지 않았습니다. 관리자에게 알려 주세요."


class RecordUnavailable(GatewayError):
    """The call's usage row and audit record could not be committed: its answer is withheld
    (fail closed: nothing is released that the audit trail does not hold). The records stay queued
    and are written when the database is back."""

    status, code, type = 503, "audit_unavailable", "server_error"
    message_ko_default = ("감사 기록을 저장하지 못해 답변을 보내지 않았습니다. "
                          "잠시 뒤 다시 시도하고, 계속되면 관리자에게 알려 주세요.")


class RecordsBacklogged(RecordUnavailable):
    """Records have been waiting for the database longer than an answer may wait for them: new
    calls are refused before any model is called, rather than answered and then withheld."""

    message_ko_default = ("감사 기록이 저장되지 못하고 있어 요청을 처리하지 않았습니다. "
                          "잠시 뒤 다시 시도하고, 계속되면 관리자에게 알려 주세요.")


class UpstreamUnavailable(GatewayError):
    """Connect error, timeout or 5xx after retries: the next fallback may be tried."""

    status, code, type = 503, "upstream_unavailable", "server_error"
    message_ko_default = "모델이 지금 응답하지 않습니다. 잠시 뒤 다시 시도하거나 다른 모델을 고르세요."


class ModelRestarting(UpstreamUnavailable):
    """The embedded model's engine stopped (crash, hang) and is starting again: retry shortly."""

    code = "model_restarting"

    def __init__(self, model: str, retry_after_s: int, problem: str):
        super().__init__(f"The model '{model}' stopped ({problem}) and is restarting; "
                         f"try again in {retry_after_s} s.", headers={"Retry-After": str(retry_after_s)})
        self.message_ko = (f"내장 모델 '{model}'이(가) 멈춰 다시 시작하는 중입니다. "
                           f"{retry_after_s}초 뒤 다시 시도하세요.")


class UpstreamBadResponse(GatewayError):
    status, code, type = 502, "upstream_error", "server_error"
    message_ko_default = "모델이 올바르지 않은 응답을 보냈습니다. 다시 시도하세요."


class UpstreamRejected(GatewayError):
    """The upstream refused the request itself (4xx): fallbacks would refuse it too."""

    code, type = "upstream_rejected", "invalid_request_error"
    message_ko_default = "모델이 요청을 거절했습니다. 요청 내용을 확인하세요."

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class LocalModelMissing(GatewayError):
    status, code, type = 503, "local_model_missing", "server_error"
    message_ko_default = "내장 모델이 설치되지 않았습니다. 관리자에게 알려 주세요."
