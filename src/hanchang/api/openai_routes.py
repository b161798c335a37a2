"""/v1: the OpenAI wire format, so the official SDKs work unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hanchang.api.openai_schemas import ChatCompletionRequest, EmbeddingRequest
from hanchang.assist import agents, answer
from hanchang.assist.chat import AttachedText
from hanchang.assist.embedding_calls import embed
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.gateway.router import Call
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.errors import error_body
from hanchang.http.responses import JSONResponse

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(request: Request, principal: Principal = Depends(require_principal)):
    created = platform_of(request).started_at
    data = [
        {
            "id": spec.name, "object": "model", "created": created, "owned_by": "hanchang",
            "kind": spec.kind, "zone": spec.zone.value, "max_grade": spec.max_grade.value,
            "context_window": spec.context_window, "aliases": list(spec.aliases),
            "description_ko": spec.describe_korean(),
        }
        for spec in platform_of(request).gateway.registry
    ]

    def usable_agents() -> list[agents.Definition]:
        with platform_of(request).db.session() as session:
            return agents.list_usable(session, principal)
    # Agents are called like models (`agent:<id>`), so an OpenAI client's model list shows them.
    data += [{"id": a.ref, "object": "model", "created": created, "owned_by": a.agency_code, "kind": "agent",
              "name": a.name, "description_ko": a.description or a.name, "shared": a.shared,
              "examples": list(a.examples)}
             for a in await run_in_threadpool(usable_agents)]
    return JSONResponse({"object": "list", "data": data})


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           principal: Principal = Depends(require_principal)):
    platform = platform_of(request)
    ask = answer.AnswerRequest(body.upstream_body(), body.data_grade or Grade.OPEN,
                               [AttachedText(a.name, a.content, a.grade) for a in body.attachments],
                               list(body.collections), body.as_of)
    if not body.stream:
        done = await answer.complete(platform, principal, ask)
        return JSONResponse(done.result, headers=_report_headers(done.call))
    stream = await answer.open_stream(platform, principal, ask)
    return StreamingResponse(_sse(stream), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **_report_headers(stream.call)})


def _report_headers(call: Call) -> dict[str, str]:
    headers = {"x-request-id": call.request_id,
               "x-hanchang-data-grade": call.report()["data_grade"]}
    if call.model_used:
        headers["x-hanchang-model"] = call.model_used
    if call.rerouted_from:
        headers["x-hanchang-rerouted-from"] = call.rerouted_from
    return headers


def _data(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _sse(stream: answer.AnswerStream) -> AsyncIterator[bytes]:
    """The answer's events as OpenAI chat.completion.chunk lines; the usage chunk carries what
    Hanchang did (`hanchang`) and, when grounded, the citations."""
    extras = {"citations": stream.citations} if stream.citations is not None else {}
    async with aclosing(stream.events()) as events:
        async for event in events:
            if isinstance(event, answer.Piece):
                if event.chunk.get("usage"):
                    event.chunk.update(hanchang=stream.call.report(), **extras)
                yield _data(event.chunk)
            elif isinstance(event, answer.Finished):
                if event.estimated:  # the upstream sent no usage: ours is an estimate, and says so
                    yield _data({**answer.closing_usage_chunk(stream, event), "hanchang": stream.call.report(),
                                 **extras})
                yield b"data: [DONE]\n\n"
            else:
                error = event.error
                yield _data(error_body(error.message, error.error_type, error.code))


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request,
                     principal: Principal = Depends(require_principal)):
    inputs = body.model_dump(exclude_none=True, exclude={"data_grade"})
    result, call = await embed(platform_of(request), principal, inputs, body.data_grade or Grade.OPEN)
    return JSONResponse(result, headers=_report_headers(call))
