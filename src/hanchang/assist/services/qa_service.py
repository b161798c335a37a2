"""qa 질의응답: grounded answers with citations (the same pipeline as chat with collections)."""

from __future__ import annotations

from typing import Any

from hanchang.assist import answer, qa
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    body = {"model": ctx.model or ctx.gateway.registry.default_model,
            "messages": [{"role": "user", "content": inputs["question"]}]}
    prepared = await answer.prepare(ctx.state, ctx.principal, answer.AnswerRequest(
        body, ctx.grade, collections=list(inputs.get("collections") or [])))
    prepared.call.endpoint = "service.qa"
    if prepared.unanswerable:
        ctx.gateway.record_unanswered(prepared.call, "no_sources")
        return ServiceResult(qa.NO_SOURCES, [], {"no_sources": True})
    result = await ctx.gateway.chat(prepared.call)
    return ServiceResult(result["choices"][0]["message"]["content"], prepared.citations or [],
                         {"hanchang": result.get("hanchang")})


QA = Service("qa", "질의응답", "Question answering",
             "선택한 지식베이스에서 근거를 찾아 출처와 함께 답합니다.",
             (Field("question", "text", "질문"), Field("collections", "collections", "지식베이스")), run)
