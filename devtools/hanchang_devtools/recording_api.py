"""An agency API that records every request exactly as it arrives (raw path, query, headers,
body), for tests that prove what a connector really sent. Any path answers; `/bookings/{id}`
answers a booking, `/moved` redirects to wherever `redirect_to` says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

OPENAPI = {
    "openapi": "3.0.3", "info": {"title": "기록 API", "version": "1"},
    "paths": {
        "/bookings/{id}": {"get": {"operationId": "get_booking", "summary": "예약 조회", "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "X-Dept", "in": "header", "required": False, "schema": {"type": "string"}}]}},
        "/search": {"get": {"operationId": "search", "summary": "검색", "parameters": [
            {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}]}},
        "/moved": {"get": {"operationId": "moved", "summary": "옮겨진 자료"}},
        "/bookings": {"post": {"operationId": "create_booking", "summary": "예약", "requestBody": {"content": {
            "application/json": {"schema": {"type": "object", "required": ["room"], "properties": {
                "room": {"type": "string"}, "title": {"type": "string"}}}}}}}},
    },
}


@dataclass
class Recording:
    requests: list[dict[str, Any]] = field(default_factory=list)
    redirect_to: str = "http://127.0.0.1:9/"

    def paths(self) -> list[str]:
        return [r["raw_path"] for r in self.requests]


def create_recording_app(recording: Recording) -> Starlette:
    async def anything(request: Request):
        body = await request.body()
        recording.requests.append({
            "method": request.method, "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.scope["query_string"].decode("latin-1"), "host": request.headers.get("host"),
            "headers": dict(request.headers), "body": body.decode("utf-8", "replace")})
        if request.url.path == "/moved":
            return RedirectResponse(recording.redirect_to, status_code=302)
        return JSONResponse({"ok": True, "path": request.url.path})

    return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
