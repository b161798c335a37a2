"""qa 질의응답: grounded answers with citations (the same pipeline as chat with collections)."""

from __future__ import annotations

from typing import Any

from hanchang.assist import answer
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    body = {"model": ctx.model_name,
            "messages": [{"role": "user", "content": inputs["question"]}]}
    done = await answer.complete(ctx.platform, ctx.principal, answer.AnswerRequest(
        body, ctx.grade, collections=list(inputs.get("collections") or []), endpoint="service.qa"))
    if done.no_sources:
        return ServiceResult(done.text, [], {"no_sources": True})
    return ServiceResult(done.text, done.citations or [], {"hanchang": done.result.get("hanchang")})


QA = Service("qa", "질의응답", "Question answering",
             "선택한 지식베이스에서 근거를 찾아 출처와 함께 답합니다.",
             (Field("question", "text", "질문"), Field("collections", "collections", "지식베이스")), run)
