"""What the JSON routes of /v1 and /api share: OpenAI's list page, a JSON object body, and
work on the database off the event loop."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from hanchang.core.errors import InvalidInput


def page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("요청 본문이 JSON이 아닙니다.", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("요청 본문은 JSON 객체입니다.", "the request body must be a JSON object")
    return body


def in_session(platform, work):
    def run():
        with platform.db.session() as session:
            return work(session)
    return run_in_threadpool(run)
