"""One request to answer, from the API or the window: attachments, grounding, then a Call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool

from hanchang.assist import qa
from hanchang.assist.chat import AttachedText, chat_call
from hanchang.assist.reading_budget import reading_budget
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal
from hanchang.gateway.router import Call
from hanchang.knowledge import collections as kc
from hanchang.knowledge.embedder import acting


@dataclass
class AnswerRequest:
    body: dict[str, Any]  # OpenAI-shaped: model, messages, sampling options
    grade: Grade = Grade.OPEN
    attachments: list[AttachedText] = field(default_factory=list)
    collections: list[str | int] = field(default_factory=list)
    as_of: date | None = None
    carried: list[GradedItem] = field(default_factory=list)  # graded context already in `body` (history)


@dataclass
class PreparedAnswer:
    call: Call
    citations: list[dict[str, Any]] | None  # None when not grounded
    unanswerable: bool = False  # grounded, but nothing relevant was found


async def prepare(state, principal: Principal, request: AnswerRequest) -> PreparedAnswer:
    """Resolve readable collections (404 otherwise), gather passages, build the gateway call."""
    body = dict(request.body)
    passages: list[qa.Passage] = []
    if request.collections:
        def readable() -> list:  # 404 for a collection the caller may not read
            with state.db.session() as session:
                return [kc.get_readable(session, principal, ref) for ref in request.collections]

        chosen = await run_in_threadpool(readable)
        gateway = state.gateway
        spec = gateway.registry.get(str(body.get("model") or gateway.registry.default_model))
        question = qa.last_user_text(body["messages"])
        speed = await gateway.speeds(spec)
        slo = state.settings.slo
        budget = reading_budget(spec, question, prefill_tps=speed.prefill_tps, decode_tps=speed.decode_tps,
                                first_token_s=slo.first_token_seconds, answer_s=slo.qa_seconds)
        passages = await run_in_threadpool(
            qa.gather_passages, state.knowledge, chosen, question, budget.source_chars,
            top_k=state.settings.knowledge.top_k, as_of=request.as_of,
            embedder=acting(state.embedder, principal, "embeddings.query"),
            grade=request.grade)
        body["messages"] = qa.grounded_messages(body["messages"], passages)
        if budget.answer_tokens and not (body.get("max_tokens") or body.get("max_completion_tokens")):
            body["max_tokens"] = budget.answer_tokens  # a grounded answer within the SLO
    call = chat_call(principal, body, request.grade, request.attachments)
    call.items += request.carried + qa.passage_items(passages)
    call.source_ids = [f"doc:{p.result.document_id}#chunk:{p.result.chunk_id}" for p in passages]
    citations = [p.citation() for p in passages] if request.collections else None
    return PreparedAnswer(call, citations, unanswerable=bool(request.collections) and not passages)
