"""OpenAI-shaped error bodies for every failure, so SDKs report them properly.

Every error a user can be told is a `HanchangError` (core/errors.py) and is mapped here, once;
the rest are the framework's own (validation, unknown path) and the unexpected (a 500 that
names no detail: the operator finds it in the server log).
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hanchang.core.errors import HanchangError
from hanchang.http.responses import JSONResponse

log = logging.getLogger(__name__)
# Failures that mean the database is not answering now (connection refused or lost, server shut
# down, pool exhausted, SQLite's lock not released in time), not a fault in the request.
STORE_OUTAGES = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)
STORE_RETRY_AFTER_S = 5


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, code: str | None,
                   param: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, code, param), status_code=status,
                          headers=headers)


class AuthError(HanchangError):
    status, code = 401, "invalid_api_key"

    def __init__(self, message_ko: str, message_en: str):
        super().__init__(message_ko, message_en, headers={"WWW-Authenticate": "Bearer"})


class CsrfError(HanchangError):
    status, code = 403, "csrf_failed"


def _field(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HanchangError)
    async def _hanchang(_: Request, exc: HanchangError):
        return error_response(exc.status, exc.message, exc.error_type, exc.code, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            message = "The request body is not valid JSON. Send a JSON object."
        else:
            message = f"Invalid value for '{field}': {first.get('msg')}"
            if len(errors) > 1:
                others = ", ".join(_field(tuple(e.get("loc", ()))) for e in errors[1:4])
                message += f" (also check: {others})"
        return error_response(422, message, "invalid_request_error", "invalid_request", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "http_error")
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", code,
                              headers=getattr(exc, "headers", None))

    async def _store_unavailable(_: Request, exc: Exception):
        # The database (or its pool) did not answer: nothing was served, and a retry will do.
        log.warning("store unavailable: %s", type(exc).__name__)
        return error_response(503, "한창의 데이터 저장소에 잠시 연결할 수 없습니다. 잠시 뒤 다시 시도해 주세요. "
                              "(The platform's database is unavailable; nothing was done. Retry shortly.)",
                              "server_error", "store_unavailable", headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    for outage in STORE_OUTAGES:
        app.add_exception_handler(outage, _store_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "Internal error in Hanchang; the operator can find details "
                              "in the server log.", "server_error", "internal_error")
