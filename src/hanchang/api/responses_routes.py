"""/v1/responses: OpenAI's Responses API (create, stream, retrieve, delete), over the chat path.

A response continues a stored one (`previous_response_id`) only for the user who made it, and
carries that conversation's grade; every answer goes through `assist.answer` like `/v1/chat`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hanchang.api import responses_format as rf
from hanchang.api.openai_routes import report_headers
from hanchang.api.openai_schemas import ResponsesRequest
from hanchang.assist import answer, stored_responses
from hanchang.assist.platform import Platform
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.gateway.router import Call
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse

router = APIRouter(prefix="/v1")
ResponseId = Path(min_length=1, max_length=64)


@router.post("/responses")
async def create_response(body: ResponsesRequest, request: Request,
                          principal: Principal = Depends(require_principal)):
    platform = platform_of(request)
    history, carried = [], []
    if body.previous_response_id:
        def load():
            with platform.db.session() as session:
                return stored_responses.continuation(session, principal, body.previous_response_id)
        history, carried = await run_in_threadpool(load)
    chat, conversation = rf.chat_body(body, history)
    ask = answer.AnswerRequest(chat, body.data_grade or Grade.OPEN, [], list(body.collections), body.as_of,
                               carried=carried, endpoint="responses")
    response_id = rf.new_id("resp")
    if not body.stream:
        done = await answer.complete(platform, principal, ask)
        result = rf.from_chat(done.result, response_id, time.time(), body)
        if body.store:
            await _store(platform, principal, result, done.call, conversation)
        return JSONResponse(result, headers=report_headers(done.call))
    stream = await answer.open_stream(platform, principal, ask)
    writer = rf.EventWriter(response_id, body, stream.model)
    return StreamingResponse(_events(platform, principal, stream, writer, conversation),
                             media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **report_headers(stream.call)})


async def _events(platform: Platform, principal: Principal, stream: answer.AnswerStream, writer: rf.EventWriter,
                  conversation: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for line in writer.start():
        yield line
    async with aclosing(stream.events()) as events:
        async for event in events:
            if isinstance(event, answer.Piece):
                for line in writer.chunk(event.chunk):
                    yield line
            elif isinstance(event, answer.Finished):
                extras = {"hanchang": stream.call.report(),
                          **({"citations": stream.citations} if stream.citations is not None else {})}
                lines = writer.finish(event.counts, extras)
                if writer.body.store:  # kept before `completed` is sent, so a client may continue at once
                    await _store(platform, principal, writer.final, stream.call, conversation)
                for line in lines:
                    yield line
            else:
                for line in writer.failed(event.error.code, event.error.message):
                    yield line


async def _store(platform: Platform, principal: Principal, response: dict[str, Any], call: Call,
                 conversation: list[dict[str, Any]]) -> None:
    messages = [*conversation, rf.assistant_message(response["output"])]

    def save() -> None:
        with platform.db.session() as session:
            stored_responses.save(session, principal, response, call.report()["data_grade"], messages)
    await run_in_threadpool(save)


@router.get("/responses/{response_id}")
async def retrieve_response(request: Request, response_id: str = ResponseId,
                            principal: Principal = Depends(require_principal)):
    def read() -> dict[str, Any]:
        with platform_of(request).db.session() as session:
            return stored_responses.read(session, principal, response_id)
    return JSONResponse(await run_in_threadpool(read))


@router.get("/responses/{response_id}/input_items")
async def list_input_items(request: Request, response_id: str = ResponseId, limit: int = Query(20, ge=1, le=100),
                           order: Literal["asc", "desc"] = "desc", after: str | None = None,
                           principal: Principal = Depends(require_principal)):
    """The items a stored response was given, as OpenAI's `responses.input_items.list` pages them."""
    def read() -> list[dict[str, Any]]:
        with platform_of(request).db.session() as session:
            return stored_responses.conversation(session, principal, response_id)
    items = rf.input_items(await run_in_threadpool(read), response_id)
    if order == "desc":
        items.reverse()
    if after is not None:
        position = next((i for i, item in enumerate(items) if item["id"] == after), None)
        items = items[position + 1:] if position is not None else []
    page = items[:limit]
    return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})


@router.delete("/responses/{response_id}")
async def delete_response(request: Request, response_id: str = ResponseId,
                          principal: Principal = Depends(require_principal)):
    def remove() -> None:
        with platform_of(request).db.session() as session:
            stored_responses.remove(session, principal, response_id)
    await run_in_threadpool(remove)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})
