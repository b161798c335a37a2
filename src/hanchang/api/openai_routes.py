"""/v1: the OpenAI wire format, so the official SDKs work unchanged."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from hanchang.api.auth import require_principal
from hanchang.api.errors import error_body
from hanchang.api.responses import JSONResponse
from hanchang.api.schemas import ChatCompletionRequest, EmbeddingRequest
from hanchang.assist import answer, qa
from hanchang.assist.chat import AttachedText
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.gateway.errors import ClientClosed, GatewayError, UpstreamUnavailable
from hanchang.gateway.router import Call, Gateway

router = APIRouter(prefix="/v1")


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


@router.get("/models")
async def list_models(request: Request, principal: Principal = Depends(require_principal)):
    created = request.app.state.started_at
    data = [
        {
            "id": spec.name, "object": "model", "created": created, "owned_by": "hanchang",
            "kind": spec.kind, "zone": spec.zone.value, "max_grade": spec.max_grade.value,
            "context_window": spec.context_window, "aliases": list(spec.aliases),
            "description_ko": spec.describe_korean(),
        }
        for spec in _gateway(request).registry
    ]
    return JSONResponse({"object": "list", "data": data})


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           principal: Principal = Depends(require_principal)):
    gateway = _gateway(request)
    prepared = await answer.prepare(request.app.state, principal, answer.AnswerRequest(
        body.upstream_body(), body.data_grade or Grade.OPEN,
        [AttachedText(a.name, a.content, a.grade) for a in body.attachments],
        list(body.collections), body.as_of))
    call, citations = prepared.call, prepared.citations
    if prepared.unanswerable:
        gateway.record_unanswered(call, "no_sources")
        return JSONResponse(qa.no_sources_completion(str(body.model or gateway.registry.default_model),
                                                     call.request_id), headers=_report_headers(call))
    if not body.stream:
        result = await gateway.chat(call)
        if citations is not None:
            result["citations"] = citations
        return JSONResponse(result, headers=_report_headers(call))
    start = await gateway.start_stream(call)
    return StreamingResponse(_sse(gateway, call, start, citations), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", **_report_headers(call)})


def _report_headers(call: Call) -> dict[str, str]:
    headers = {"x-request-id": call.request_id,
               "x-hanchang-data-grade": call.report()["data_grade"]}
    if call.model_used:
        headers["x-hanchang-model"] = call.model_used
    if call.rerouted_from:
        headers["x-hanchang-rerouted-from"] = call.rerouted_from
    return headers


async def _sse(gateway: Gateway, call: Call, start,
               citations: list[dict] | None = None) -> AsyncIterator[bytes]:
    counts: dict[str, Any] | None = None
    error: GatewayError | None = None
    text_chars = 0
    last: dict[str, Any] = start.first
    try:
        async for chunk in start.chunks():
            chunk["model"] = start.model.name
            if chunk.get("usage"):
                counts = chunk["usage"]
                chunk["hanchang"] = call.report()
                if citations is not None:
                    chunk["citations"] = citations
            for choice in chunk.get("choices") or ():
                text_chars += len((choice.get("delta") or {}).get("content") or "")
            last = chunk
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        if counts is None:  # the upstream did not report usage: estimate, and say so
            prompt_chars = sum(len(str(m.get("content") or "")) for m in call.body["messages"])
            counts = {"prompt_tokens": max(1, prompt_chars // 3),
                      "completion_tokens": max(0, text_chars // 3), "estimated": True}
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
            yield b"data: " + orjson.dumps({
                "id": last.get("id", call.request_id), "object": "chat.completion.chunk",
                "created": last.get("created", int(time.time())), "model": start.model.name,
                "choices": [], "usage": counts, "hanchang": call.report(),
                **({"citations": citations} if citations is not None else {}),
            }) + b"\n\n"
        yield b"data: [DONE]\n\n"
    except GatewayError as exc:
        error = exc
        yield b"data: " + orjson.dumps(error_body(exc.message, exc.type, exc.code)) + b"\n\n"
    except Exception:
        error = UpstreamUnavailable(f"Model '{start.model.name}' failed mid-stream.")
        yield b"data: " + orjson.dumps(error_body(error.message, error.type, error.code)) + b"\n\n"
    finally:
        if error is None and counts is None:
            error = ClientClosed()
        with anyio.CancelScope(shield=True):  # a disconnect cancels the response: still record it
            await start.rest.aclose()
            await gateway.finish_stream(call, counts, error)


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request,
                     principal: Principal = Depends(require_principal)):
    call = Call(principal, "embeddings", body.model_dump(exclude_none=True, exclude={"data_grade"}),
                grade=body.data_grade or Grade.OPEN)
    return JSONResponse(await _gateway(request).embeddings(call), headers=_report_headers(call))
