"""/v1: the OpenAI wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hanchang.api import completions_format
from hanchang.api.openai_schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from hanchang.assist import agents, answer
from hanchang.assist.chat import AttachedText
from hanchang.assist.embedding_calls import embed
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.gateway.errors import ModelNotFound, RecordUnavailable
from hanchang.gateway.router import Call
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.errors import error_body
from hanchang.http.responses import JSONResponse

router = APIRouter(prefix="/v1")


def _model_entry(spec, created: int) -> dict[str, Any]:
    owner = spec.extra.get("owner_agency_id")
    return {"id": spec.name, "object": "model", "created": created,
            "owned_by": f"agency-{owner}" if owner is not None else "hanchang",
            **({"base_model": spec.extra["adapter_of"], "grade": spec.extra["grade_floor"]}
               if owner is not None else {}),
            "kind": spec.kind, "zone": spec.zone.value, "max_grade": spec.max_grade.value,
            "context_window": spec.context_window, "aliases": list(spec.aliases),
            "description_ko": spec.describe_korean() + (
                f" · 파인튜닝 모델({spec.extra['adapter_of']} 기반, "
                f"{Grade.parse(spec.extra['grade_floor']).korean} 자료로 학습)" if owner is not None else "")}


def _agent_entry(agent: agents.Definition, created: int) -> dict[str, Any]:
    return {"id": agent.ref, "object": "model", "created": created, "owned_by": agent.agency_code, "kind": "agent",
            "name": agent.name, "description_ko": agent.description or agent.name, "shared": agent.shared,
            "examples": list(agent.examples)}


@router.get("/models")
async def list_models(request: Request, principal: Principal = Depends(require_principal)):
    created = platform_of(request).started_at
    usable = platform_of(request).gateway.registry.usable_by(principal.agency_id)
    data = [_model_entry(spec, created) for spec in usable]

    def usable_agents() -> list[agents.Definition]:
        with platform_of(request).db.session() as session:
            return agents.list_usable(session, principal)
    # Agents are called like models (`agent:<id>`), so an OpenAI client's model list shows them.
    data += [_agent_entry(a, created) for a in await run_in_threadpool(usable_agents)]
    return JSONResponse({"object": "list", "data": data})


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, principal: Principal = Depends(require_principal)):
    """One model (by name or alias) or agent the caller may use (OpenAI's `models.retrieve`)."""
    platform = platform_of(request)
    created = platform.started_at
    if agents.is_ref(model_id):
        def usable() -> agents.Definition:
            with platform.db.session() as session:
                return agents.usable(session, principal, model_id)
        try:
            return JSONResponse(_agent_entry(await run_in_threadpool(usable), created))
        except HanchangError:
            pass  # reported below as an unknown model, as OpenAI reports one
    usable = platform.gateway.registry.usable_by(principal.agency_id)
    name = platform.gateway.registry.canonical(model_id)
    if name is not None and any(spec.name == name for spec in usable):
        return JSONResponse(_model_entry(platform.gateway.registry.get(model_id), created))
    known = ", ".join(spec.name for spec in usable)
    raise ModelNotFound(f"The model '{model_id}' does not exist. Available models: {known}.", param="model")


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           principal: Principal = Depends(require_principal)):
    platform = platform_of(request)
    body.refuse_non_text_parts()
    ask = answer.AnswerRequest(body.upstream_body(), body.data_grade or Grade.OPEN,
                               [AttachedText(a.name, a.content, a.grade) for a in body.attachments],
                               list(body.collections), body.as_of)
    if not body.stream:
        done = await answer.complete(platform, principal, ask)
        return JSONResponse(done.result, headers=report_headers(done.call))
    stream = await answer.open_stream(platform, principal, ask)
    return StreamingResponse(_sse(stream, body.include_usage), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **report_headers(stream.call)})


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request, principal: Principal = Depends(require_principal)):
    """The legacy text completion, answered by the chat path (completions_format)."""
    platform = platform_of(request)
    ask = answer.AnswerRequest(completions_format.chat_body(body), body.data_grade or Grade.OPEN, [],
                               list(body.collections), body.as_of, endpoint="completions")
    if not body.stream:
        done = await answer.complete(platform, principal, ask)
        return JSONResponse(completions_format.completion(done.result, body), headers=report_headers(done.call))
    stream = await answer.open_stream(platform, principal, ask)
    echoed: set[int] = set()

    def shape(chunk: dict[str, Any]) -> dict[str, Any]:
        return completions_format.chunk(chunk, body, echoed)
    return StreamingResponse(_sse(stream, body.include_usage, shape), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **report_headers(stream.call)})


def report_headers(call: Call) -> dict[str, str]:
    headers = {"x-request-id": call.request_id,
               "x-hanchang-data-grade": call.report()["data_grade"]}
    if call.model_used:
        headers["x-hanchang-model"] = call.model_used
    if call.rerouted_from:
        headers["x-hanchang-rerouted-from"] = call.rerouted_from
    return headers


def _sse_line(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _sse(stream: answer.AnswerStream, include_usage: bool,
               shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> AsyncIterator[bytes]:
    """The answer's events as OpenAI chat.completion.chunk lines.

    The model is always asked for its usage (for records and budgets), but the client gets the
    usage-only chunk only when it asked (`stream_options.include_usage`), as from OpenAI. What
    Hanchang did (`hanchang`) and, when grounded, the citations ride on the stream's last chunk:
    the usage chunk, or else the last chunk that finishes a choice. A finishing chunk is held
    back until the next event shows whether it is the last; no other chunk waits. `shape` turns
    each chat chunk into another door's chunk (the legacy text completion)."""
    def _data(chunk: dict[str, Any]) -> bytes:
        return _sse_line(shape(chunk) if shape is not None else chunk)

    extras = {"citations": stream.citations} if stream.citations is not None else {}
    held: dict[str, Any] | None = None
    async with aclosing(stream.events()) as events:
        async for event in events:
            if isinstance(event, answer.Piece):
                chunk = event.chunk
                usage_only = bool(chunk.get("usage")) and not chunk.get("choices")
                if usage_only and not include_usage:
                    continue
                if not include_usage:
                    chunk.pop("usage", None)  # an upstream sending usage on every chunk
                if held is not None:
                    yield _data(held)
                    held = None
                if usage_only or any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                    held = chunk
                else:
                    yield _data(chunk)
            elif isinstance(event, answer.Finished):
                if include_usage and event.estimated:  # the upstream sent none: ours is an estimate, and says so
                    if held is not None:
                        yield _data(held)
                    held = answer.closing_usage_chunk(stream, event)
                if held is None:  # the upstream ended without a finishing chunk: close the choice
                    held = answer.closing_chunk(stream, event)
                yield _data({**held, **extras, "hanchang": stream.call.report()})
                yield b"data: [DONE]\n\n"
            else:
                error = event.error
                if held is not None and not isinstance(error, RecordUnavailable):  # unrecorded: no finish
                    yield _data(held)
                yield _sse_line(error_body(error.message, error.error_type, error.code))


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request,
                     principal: Principal = Depends(require_principal)):
    inputs = body.model_dump(exclude_none=True, exclude={"data_grade"})
    result, call = await embed(platform_of(request), principal, inputs, body.data_grade or Grade.OPEN)
    if body.encoding_format == "base64":  # asked (the Node SDK's default): base64 whatever the upstream sent
        for item in result.get("data") or ():
            if isinstance(item.get("embedding"), list):
                item["embedding"] = base64.b64encode(np.asarray(item["embedding"], "<f4").tobytes()).decode("ascii")
    return JSONResponse(result, headers=report_headers(call))
