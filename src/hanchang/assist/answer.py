"""The answer use case, end to end, for every door: prepare → route → stream or complete → record.

One request to answer (from `/v1`, the window or a work service): attachments and grounding
are added, the gateway routes and guards it, the answer comes back whole (`complete`) or as a
stream (`open_stream`, then `AnswerStream.events()`), and the gateway writes its usage row and
audit record. The stream's lifecycle — a model's first chunk, the pieces, the end, a
truncated upstream, the caller leaving — is handled here once; the doors only format the
typed events (`/v1` as OpenAI SSE, the window as its own stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from hanchang.assist import agents, qa
from hanchang.assist.chat import AttachedText, chat_call
from hanchang.assist.grounded_answer import RETRY_HINT, Grounding, SentenceStream
from hanchang.assist.platform import Platform
from hanchang.assist.reading_budget import reading_budget
from hanchang.audit import metrics
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal
from hanchang.core.text import last_user_text, message_text
from hanchang.gateway.errors import ClientClosed, GatewayError, RecordUnavailable, UpstreamUnavailable
from hanchang.gateway.router import Call, StreamStart
from hanchang.knowledge import collections as kc
from hanchang.knowledge.embedder import acting

log = logging.getLogger(__name__)


@dataclass
class AnswerRequest:
    body: dict[str, Any]  # OpenAI-shaped: model, messages, sampling options
    grade: Grade = Grade.OPEN
    attachments: list[AttachedText] = field(default_factory=list)
    collections: list[str | int] = field(default_factory=list)
    as_of: date | None = None
    carried: list[GradedItem] = field(default_factory=list)  # graded context already in `body` (history)
    endpoint: str = "chat.completions"  # how usage and audit name the door (e.g. service.qa)


@dataclass
class PreparedAnswer:
    call: Call
    citations: list[dict[str, Any]] | None  # None when not grounded
    unanswerable: bool = False  # grounded, but nothing relevant was found
    grounding: Grounding | None = None  # grounded: checks and cites the answer


@dataclass(frozen=True)
class AgentUse:
    definition: agents.Definition
    collections_skipped: int  # the agent's collections the caller may not read (not used)


async def _as_agent(platform: Platform, principal: Principal, request: AnswerRequest) -> AgentUse | None:
    """For `model: "agent:<id>"`: the agent's instructions first, its model (or the default),
    and those of its collections the caller may read added to the request's own."""
    if not agents.is_ref(request.body.get("model")):
        return None

    def load() -> tuple[agents.Definition, list[int], int]:
        with platform.db.session() as session:
            definition = agents.usable(session, principal, request.body["model"])
            return definition, *agents.readable_collections(session, principal, definition)

    definition, kept, skipped = await run_in_threadpool(load)
    registry = platform.gateway.registry
    model = definition.model if definition.model and registry.canonical(definition.model) else None
    request.body = {**request.body, "model": registry.requested(model),
                    "messages": [definition.system_message(), *(request.body.get("messages") or ())]}
    request.collections = list(dict.fromkeys([*request.collections, *kept]))
    return AgentUse(definition, skipped)


async def prepare(platform: Platform, principal: Principal, request: AnswerRequest) -> PreparedAnswer:
    """Resolve readable collections (404 otherwise), gather passages, build the gateway call."""
    agent = await _as_agent(platform, principal, request)
    body = dict(request.body)
    passages: list[qa.Passage] = []
    grounding: Grounding | None = None
    if request.collections:
        def readable() -> list:  # 404 for a collection the caller may not read
            with platform.db.session() as session:
                found = [kc.get_readable(session, principal, ref) for ref in request.collections]
                return list({c.id: c for c in found}.values())

        chosen = await run_in_threadpool(readable)
        gateway = platform.gateway
        spec = gateway.registry.get(gateway.registry.requested(body.get("model")))
        question = last_user_text(body["messages"])
        speed = await gateway.speeds(spec)
        slo = platform.settings.slo
        budget = reading_budget(spec, question, prefill_tps=speed.prefill_tps, decode_tps=speed.decode_tps,
                                first_token_s=slo.first_token_seconds, answer_s=slo.qa_seconds)
        searching = time.perf_counter()
        passages = await run_in_threadpool(
            qa.gather_passages, platform.knowledge, chosen, question, budget.source_chars,
            top_k=platform.settings.knowledge.top_k, as_of=request.as_of,
            embedder=acting(platform.embedder, principal, "embeddings.query"),
            grade=request.grade)
        metrics.observe_retrieval(time.perf_counter() - searching)
        key = None
        if passages:
            grounding = Grounding(question, [(p.index, p.result.text) for p in passages])
            if not await run_in_threadpool(grounding.relevant):
                passages = []  # nothing that speaks to the question: say so rather than guess
            else:
                key = await run_in_threadpool(grounding.key_sentence)
        body["messages"] = qa.grounded_messages(body["messages"], passages, key)
        if budget.answer_tokens and not (body.get("max_tokens") or body.get("max_completion_tokens")):
            body["max_tokens"] = budget.answer_tokens  # a grounded answer within the SLO
        body.setdefault("temperature", 0)  # read, do not invent: small models stay with the source when cold
    call = chat_call(principal, body, request.grade, request.attachments, endpoint=request.endpoint)
    call.items += request.carried + qa.passage_items(passages)
    call.grounded = bool(request.collections)
    if agent is not None:
        call.agent_id = agent.definition.id
        call.agent_info = {"id": agent.definition.ref, "name": agent.definition.name,
                           "shared": agent.definition.shared, "collections_skipped": agent.collections_skipped}
    call.source_ids = [f"doc:{p.result.document_id}#chunk:{p.result.chunk_id}" for p in passages]
    citations = [p.citation() for p in passages] if request.collections else None
    single = (body.get("n") or 1) == 1 and not body.get("tools")
    return PreparedAnswer(call, citations, unanswerable=bool(request.collections) and not passages,
                          grounding=grounding if passages and single else None)


# -- a whole answer ---------------------------------------------------------------------------
@dataclass
class Completion:
    result: dict[str, Any]  # the OpenAI chat.completion, with `hanchang` (and `citations` if grounded)
    call: Call
    citations: list[dict[str, Any]] | None
    no_sources: bool = False

    @property
    def text(self) -> str:
        return (self.result["choices"][0]["message"].get("content") or "").strip()


async def complete(platform: Platform, principal: Principal, request: AnswerRequest) -> Completion:
    """The whole answer in one piece (or the Korean 'no sources' answer, recorded as such)."""
    prepared = await prepare(platform, principal, request)
    call = prepared.call
    if prepared.unanswerable:
        await platform.gateway.record_unanswered(call, "no_sources")
        model = platform.gateway.registry.requested(call.body.get("model"))
        return Completion(qa.no_sources_completion(model, call.request_id), call, [], no_sources=True)
    result = await platform.gateway.chat(call)
    if prepared.grounding is not None:
        result, call = await _checked(platform, prepared, result)
    if prepared.citations is not None:
        result["citations"] = prepared.citations
    return Completion(result, call, prepared.citations)


def _content(result: dict[str, Any]) -> str:
    choices = result.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


async def _checked(platform: Platform, prepared: PreparedAnswer,
                   result: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    """A whole grounded answer, cited by the platform; one that states numbers no passage holds
    is asked again once (told to copy numbers as written), and flagged if it still does."""
    grounding, call = prepared.grounding, prepared.call
    text = _content(result)
    invented = await run_in_threadpool(grounding.invented, text)
    if invented:
        retry = _retry_call(call)
        try:
            again = await platform.gateway.chat(retry)
        except GatewayError:
            log.warning("the retry of a grounded answer with invented numbers failed", exc_info=True)
        else:
            grounding.check.retried = True
            if len(await run_in_threadpool(grounding.invented, _content(again))) < len(invented):
                result, call, text = again, retry, _content(again)
    shown = await run_in_threadpool(grounding.finish, text)
    result["choices"][0]["message"]["content"] = shown
    call.answer_check = grounding.check.report()
    result["hanchang"] = call.report()
    return result, call


def _retry_call(call: Call) -> Call:
    """The same request once more, its instructions reminding the model to copy numbers."""
    messages = [dict(m) for m in call.body["messages"]]
    messages[0]["content"] = f"{messages[0]['content']}\n\n{RETRY_HINT}"
    retry = Call(call.principal, call.endpoint, {**call.body, "messages": messages, "temperature": 0},
                 grade=call.grade, items=list(call.items), source_ids=list(call.source_ids),
                 grounded=call.grounded, agent_id=call.agent_id, agent_info=call.agent_info)
    return retry


# -- a streamed answer ------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One chunk as the model sent it (output-guarded), and the answer text it adds."""

    chunk: dict[str, Any]
    text: str


@dataclass(frozen=True)
class Finished:
    """The model finished. `counts` is its usage, or an estimate (`estimated`) when it sent none."""

    counts: dict[str, Any]
    estimated: bool
    text: str
    last: dict[str, Any]  # the last chunk (its id and time name a closing usage chunk)


@dataclass(frozen=True)
class Failed:
    """The answer broke off (upstream error, truncated stream); `text` is what was written."""

    error: GatewayError
    text: str


AnswerEvent = Piece | Finished | Failed


@dataclass
class AnswerStream:
    """A stream a model has committed to (its first chunk arrived), or the 'no sources' answer."""

    call: Call
    citations: list[dict[str, Any]] | None
    model: str  # the model answering (the requested one when nothing was found to ground on)
    _platform: Platform
    _start: StreamStart | None  # None: no sources, nothing was sent to a model
    grounding: Grounding | None = None  # grounded: sentences go out cited, the quote at the end

    @property
    def no_sources(self) -> bool:
        return self._start is None

    async def events(self) -> AsyncIterator[AnswerEvent]:
        """Pieces, then one Finished or Failed. Whatever ends the stream — its end, an upstream
        error, the caller leaving (recorded as 499) — the gateway records it exactly once."""
        if self._start is None:  # the Korean 'no sources' answer, then its (zero) usage, as a model would
            chunk = qa.no_sources_chunk(self.model, self.call.request_id)
            zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            yield Piece(chunk, qa.NO_SOURCES)
            yield Piece({**chunk, "choices": [], "usage": zero}, "")
            yield Finished(zero, False, qa.NO_SOURCES, chunk)
            return
        gateway, start, call = self._platform.gateway, self._start, self.call
        counts: dict[str, Any] | None = None
        error: GatewayError | None = None
        recorded = False
        text = ""
        last: dict[str, Any] = start.first
        try:
            try:
                async for chunk in _cited(start.chunks(), self.grounding, call):
                    chunk["model"] = start.model.name
                    if chunk.get("usage"):
                        counts = chunk["usage"]
                    piece = "".join((choice.get("delta") or {}).get("content") or ""
                                    for choice in chunk.get("choices") or ())
                    text += piece
                    last = chunk
                    yield Piece(chunk, piece)
            except GatewayError as exc:
                error = exc
            except Exception:  # a bug or a broken upstream mid-stream: the caller gets a clean error
                log.exception("stream from %s failed", start.model.name)
                error = UpstreamUnavailable(f"Model '{start.model.name}' failed mid-stream.")
            if error is None:
                estimated = counts is None
                if estimated:
                    counts = _estimate(call, text)
                await start.rest.aclose()
                recorded = True  # from here on the gateway has the call, however recording ends
                try:  # the closing bytes go out only once the records have committed
                    await gateway.finish_stream(call, counts, None)
                except RecordUnavailable as exc:
                    error = exc
                else:
                    yield Finished(counts, estimated, text, last)
                    return
            yield Failed(error, text)
        finally:
            if not recorded:
                if error is None:  # the caller pressed stop or went away
                    error = ClientClosed()
                with anyio.CancelScope(shield=True):  # a disconnect cancels us: still record it
                    await start.rest.aclose()
                    await gateway.finish_stream(call, counts, error)


async def open_stream(platform: Platform, principal: Principal, request: AnswerRequest) -> AnswerStream:
    """Prepare and route; return once a model has sent its first chunk. Anything refused before
    that (grade, personal data, limits, no model reachable) raises, so a door can still answer
    with an HTTP error; the gateway has recorded it."""
    prepared = await prepare(platform, principal, request)
    call = prepared.call
    if prepared.unanswerable:
        await platform.gateway.record_unanswered(call, "no_sources")
        model = platform.gateway.registry.requested(call.body.get("model"))
        return AnswerStream(call, [], model, platform, None)
    start = await platform.gateway.start_stream(call)
    return AnswerStream(call, prepared.citations, start.model.name, platform, start, prepared.grounding)


async def _cited(chunks: AsyncIterator[dict[str, Any]], grounding: Grounding | None,
                 call: Call) -> AsyncIterator[dict[str, Any]]:
    """A grounded stream re-cut into cited sentences; the quote and any note before the end."""
    if grounding is None:
        async for chunk in chunks:
            yield chunk
        return
    sentences = SentenceStream(grounding)
    ended = False
    template: dict[str, Any] | None = None

    def closing() -> dict[str, Any] | None:
        tail = sentences.finish()
        call.answer_check = grounding.check.report()
        return {**template, "choices": [{"index": 0, "delta": {"content": tail}, "finish_reason": None}]} \
            if tail else None

    async for chunk in chunks:
        choices = chunk.get("choices") or []
        template = template or {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        if not choices:  # a usage chunk: the answer has ended
            if not ended:
                ended = True
                if (tail := await run_in_threadpool(closing)) is not None:
                    yield tail
            yield chunk
            continue
        choice = choices[0]
        delta = choice.get("delta") or {}
        other = {k: v for k, v in delta.items() if k != "content"}
        shown = await run_in_threadpool(sentences.feed, delta["content"]) if delta.get("content") else ""
        if shown or other:  # text is held back until its sentence ends
            yield {**chunk, "choices": [{**choice, "delta": {**other, **({"content": shown} if shown else {})},
                                         "finish_reason": None}]}
        if choice.get("finish_reason") and not ended:
            ended = True
            if (tail := await run_in_threadpool(closing)) is not None:
                yield tail
            yield {**chunk, "choices": [{**choice, "delta": {}}]}
    if not ended and template is not None and (tail := await run_in_threadpool(closing)) is not None:
        yield tail


def _estimate(call: Call, text: str) -> dict[str, Any]:
    """Usage when the upstream reported none (~3 characters a token), marked as estimated."""
    prompt_chars = sum(len(message_text(m)) for m in call.body.get("messages") or ())
    counts = {"prompt_tokens": max(1, prompt_chars // 3), "completion_tokens": len(text) // 3, "estimated": True}
    counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    return counts


def closing_chunk(stream: AnswerStream, finished: Finished) -> dict[str, Any]:
    """A chunk that finishes the answer's choice, for a stream whose upstream sent none."""
    return {"id": finished.last.get("id", stream.call.request_id), "object": "chat.completion.chunk",
            "created": finished.last.get("created", int(time.time())), "model": stream.model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def closing_usage_chunk(stream: AnswerStream, finished: Finished) -> dict[str, Any]:
    """An OpenAI usage-only chunk for a stream whose upstream sent no usage."""
    return {**closing_chunk(stream, finished), "choices": [], "usage": finished.counts}
