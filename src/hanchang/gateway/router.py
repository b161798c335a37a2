"""Route a call to a model: grade policy, personal-data guard, limits, fallback, records.

Nothing reaches a backend except through `Gateway`. `Gateway.route` is the policy seam: it
asks `core.policy` for the effective grade and the model that may answer, and filters every
fallback through `decide_model_access`. Before each backend call the request is guarded for
that model's zone; every answer passes the output guard; every call leaves one usage row and
one audit record.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hanchang.audit import metrics
from hanchang.audit.recorder import Recorder
from hanchang.audit.trail import AuditEntry, PromptSealer
from hanchang.audit.usage import Usage
from hanchang.config import LimitsConfig, PiiConfig, PolicyConfig
from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec, ModelSpeed
from hanchang.core.pii_modes import PiiMode, pii_mode_for
from hanchang.core.policy import (
    EffectiveGrade,
    GradedItem,
    RouteDecision,
    RouteVerdict,
    decide_model_access,
    decide_route,
    effective_grade,
)
from hanchang.core.principal import Principal
from hanchang.core.text import message_text
from hanchang.gateway.backends import create_backend
from hanchang.gateway.backends.base import Backend
from hanchang.gateway.errors import (
    ClientClosed,
    GatewayError,
    ModelNotFound,
    PersonalDataRefused,
    PolicyRefused,
    RecordsBacklogged,
    RecordUnavailable,
    UninspectableInput,
    UnsendableRequest,
    UpstreamUnavailable,
    WrongModelKind,
)
from hanchang.gateway.limits import Budget, RateLimiter
from hanchang.gateway.quotas import BudgetExhausted, BudgetPlan, Period, QuotaStore
from hanchang.gateway.registry import ModelRegistry
from hanchang.guard.links import known_links
from hanchang.guard.output import OutputGuard
from hanchang.guard.request_guard import (
    GuardedRequest,
    InputNotInspectable,
    InputTooDeep,
    PersonalDataBlocked,
    guard_request,
)

log = logging.getLogger(__name__)
RECORD_WAIT_S = 10.0  # how long an answer waits for its records to commit before it is withheld


@dataclass
class Call:
    """One client request as the gateway sees it, and what became of it."""

    principal: Principal
    endpoint: str
    body: dict[str, Any]
    grade: Grade = Grade.OPEN  # declared by the caller
    items: list[GradedItem] = field(default_factory=list)  # attachments, retrieved passages
    source_ids: list[str] = field(default_factory=list)
    stream: bool = False
    grounded: bool = False  # asked to answer from knowledge bases
    agent_id: int | None = None  # answered as an agent (업무 에이전트)
    agent_info: dict[str, Any] | None = None  # what the caller is told of it
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Answer only once the call's records have committed. Off for the platform's own embedding
    # calls made inside an ingest transaction (on SQLite that transaction holds the write lock
    # the records need); their records are written right after it.
    await_records: bool = True
    started: float = field(default_factory=time.perf_counter)
    # Filled in on the way:
    effective: EffectiveGrade | None = None
    decision: RouteDecision | None = None
    model_used: str | None = None
    guarded: GuardedRequest | None = None
    output: OutputGuard | None = None
    ttft_ms: int | None = None
    budget_scopes: list[str] = field(default_factory=list)  # budgets this call spends from
    budget_period: Period | None = None
    budget_notice: dict[str, Any] | None = None  # set when a budget is nearly used up
    cost_won: float | None = None  # at the answering model's price, once its usage is known
    answer_check: dict[str, Any] | None = None  # a grounded answer's citations and numbers, as checked

    @property
    def rerouted_from(self) -> str | None:
        d = self.decision
        return d.requested.name if d and d.verdict is RouteVerdict.REROUTE else None

    def report(self) -> dict[str, Any]:
        """What Hanchang did with the request, for the client (`hanchang` field, headers)."""
        return {
            "data_grade": self.effective.grade.value if self.effective else self.grade.value,
            "grade_reason": self.effective.reason if self.effective else None,
            "rerouted_from": self.rerouted_from,
            "route_notice": self.decision.reason if self.rerouted_from else None,
            "pii": {"mode": self.guarded.mode.value, "counts": self.guarded.counts}
            if self.guarded else None,
            "links_removed": self.output.links_removed if self.output else 0,
            **({"budget": self.budget_notice} if self.budget_notice else {}),
            **({"agent": self.agent_info} if self.agent_info else {}),
            **({"answer_check": self.answer_check} if self.answer_check is not None else {}),
        }


@dataclass
class StreamStart:
    """A stream whose first chunk has arrived, so the model is committed."""

    model: ModelSpec
    first: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """Every chunk, the first one included (an empty first chunk is skipped)."""
        if self.first:
            yield self.first
        async for chunk in self.rest:
            yield chunk


class Gateway:
    def __init__(
        self,
        registry: ModelRegistry,
        limiter: RateLimiter,
        limits: LimitsConfig,
        recorder: Recorder | None,
        policy: PolicyConfig | None = None,
        pii: PiiConfig | None = None,
        sealer: PromptSealer | None = None,
        backend_factory: Callable[[ModelSpec], Backend] = create_backend,
        budget_plan: BudgetPlan | None = None,
        quota_store: QuotaStore | None = None,
    ):
        self.registry = registry
        self.limiter = limiter
        self.limits = limits
        self.recorder = recorder
        self.policy = policy or PolicyConfig()
        self.pii = pii or PiiConfig()
        self.sealer = sealer
        self._factory = backend_factory
        self.budget_plan = budget_plan
        self.quota_store = quota_store
        self._backends: dict[str, Backend] = {}
        self._speeds: dict[str, ModelSpeed] = {}

    def backend(self, spec: ModelSpec) -> Backend:
        backend = self._backends.get(spec.name)
        if backend is None:
            if spec.extra.get("adapter_of"):  # a fine-tuned model runs on its base's engine
                from hanchang.gateway.backends.adapter import AdapterBackend

                base = self.registry.get(spec.extra["adapter_of"])
                # On the embedded engine the base's own process serves it; upstream (vLLM), a
                # client of its own that names the adapter as the model.
                inner = self.backend(base) if base.backend == "llamacpp" else self._factory(spec)
                backend = AdapterBackend(spec, inner, base)
            else:
                backend = self._factory(spec)
            self._backends[spec.name] = backend
        return backend

    async def warm_up(self) -> None:
        """Start the embedded models' engines now (at serve), so the first question does not wait."""
        for spec in self.registry:
            backend = self.backend(spec)
            if hasattr(backend, "start"):
                try:
                    await backend.start()
                except GatewayError as exc:  # e.g. model not installed: said again on first use
                    log.warning("model %s not started: %s", spec.name, exc.message_en)

    async def model_status(self, spec: ModelSpec) -> dict[str, Any]:
        """The engine's state for an embedded model; reachability for an upstream."""
        backend = self.backend(spec)
        if hasattr(backend, "status"):
            return backend.status()
        if hasattr(backend, "probe"):
            return {"name": spec.name, **await backend.probe()}
        return {"name": spec.name, "state": "unknown"}

    async def speeds(self, spec: ModelSpec) -> ModelSpeed:
        """How fast a model reads prompts and writes answers (tokens/s), as far as measured.

        The embedded engine measures itself (and is started here if it was not running, since
        the call that asks is about to use it); upstreams are measured on streamed answers.
        """
        backend = self.backend(spec)
        if hasattr(backend, "measured_speed"):
            return await backend.measured_speed()
        return self._speeds.get(spec.name, ModelSpeed())

    def _learn_speed(self, call: Call, counts: dict[str, Any]) -> None:
        prompt, written = int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0)
        if not call.model_used or call.ttft_ms is None or counts.get("estimated"):
            return
        speed = self._speeds.setdefault(call.model_used, ModelSpeed())
        if prompt >= 200 and call.ttft_ms > 0:  # shorter prompts measure latency, not reading
            speed.learn("prefill_tps", prompt / (call.ttft_ms / 1000))
        writing_s = time.perf_counter() - call.started - call.ttft_ms / 1000
        if written >= 16 and writing_s > 0:
            speed.learn("decode_tps", written / writing_s)

    def budgets(self, principal: Principal) -> list[Budget]:
        agency = self.limits.agencies.get(principal.agency_code, self.limits.per_agency)
        budgets = [Budget(f"agency:{principal.agency_code}", agency.requests_per_minute,
                          agency.tokens_per_minute)]
        if principal.api_key_id is not None:
            key = self.limits.per_key
            budgets.append(Budget(f"key:{principal.api_key_id}", key.requests_per_minute,
                                  key.tokens_per_minute))
        return budgets

    async def admit(self, call: Call) -> None:
        """The audit trail, rate limits, then budgets: count the request, or refuse it before any
        model is called."""
        if (call.await_records and self.recorder is not None and self.recorder.running
                and self.recorder.stalled_s > RECORD_WAIT_S):
            # Its answer could not be released anyway: do not spend a model call on it. (Not the
            # platform's own embedding calls inside an ingest: on SQLite the records may be
            # waiting for that very transaction.)
            raise RecordsBacklogged(
                f"Usage and audit records have not been written for {self.recorder.stalled_s:.0f} s, so "
                "no new call is made. Try again shortly; tell the administrator if this persists.",
                headers={"x-request-id": call.request_id})
        await self.limiter.admit(self.budgets(call.principal))
        plan, store = self.budget_plan, self.quota_store
        if plan is None or store is None:
            return
        if plan.stale:
            try:
                await asyncio.to_thread(plan.reload)
            except Exception:  # keep the last overrides; the counters themselves fail closed
                log.exception("could not read budget overrides; using the ones read before")
        now = time.time()
        period, today = plan.period(now)
        quotas = plan.quotas(call.principal, today)
        if not quotas:
            return
        try:
            standing = await store.admit(quotas, period, now)
        except BudgetExhausted as exc:
            metrics.observe_budget_refusal(exc.scope, exc.kind)
            raise
        call.budget_scopes, call.budget_period = [q.scope for q in quotas], period
        metrics.note_budget_standing(tuple(call.budget_scopes), standing)
        fullest = standing.highest()
        if fullest and fullest[2] >= plan.config.warn_at:
            quota, kind, share = fullest
            call.budget_notice = {
                "scope": quota.scope, "kind": kind, "used_share": round(share, 3), "resets_at":
                period.resets_at.isoformat(),
                "message": f"{quota.label_ko}의 {period.label_ko} 예산을 {share:.0%} 사용했습니다 "
                           f"({period.resets_at:%m월 %d일}에 다시 채워집니다). "
                           f"(Budget {share:.0%} used; resets {period.resets_at:%Y-%m-%d}.)"}

    async def spend(self, call: Call, counts: dict[str, Any]) -> None:
        """After a call: its tokens to the rate limits, its tokens and cost to its budgets."""
        tokens = _tokens(counts)
        call.cost_won = self._cost(call, counts)
        await self.limiter.add_tokens(self.budgets(call.principal), tokens)
        if call.budget_scopes and self.quota_store is not None and call.budget_period is not None:
            try:
                await self.quota_store.spend(call.budget_scopes, call.budget_period, tokens, call.cost_won)
            except GatewayError:  # the call happened; the next admit() fails closed if Redis is gone
                log.warning("could not count %s tokens against budgets %s", tokens, call.budget_scopes)

    def _cost(self, call: Call, counts: dict[str, Any]) -> float:
        if not call.model_used:
            return 0.0
        try:
            spec = self.registry.get(call.model_used)
        except GatewayError:
            return 0.0
        return spec.cost_won(int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0))

    # -- the policy seam ---------------------------------------------------------------
    def route(self, call: Call, kind: str) -> list[ModelSpec]:
        """Decide the effective grade and who may answer; the candidates, in order."""
        # Which adapter the engine applies is the platform's to say (backends/adapter.py), never a caller's.
        call.body.pop("hanchang_adapter", None)
        requested = self.registry.get(self.registry.requested(call.body.get("model")))
        if requested.kind != kind:
            raise WrongModelKind(
                f"Model '{requested.name}' is a {requested.kind} model; it cannot serve {call.endpoint}.",
                param="model",
            )
        trained_model_access(call, requested, self.registry)
        call.effective = effective_grade(call.grade, call.items)
        # Never rerouted to a fine-tuned model: it is its agency's own.
        call.decision = decide_route(call.effective.grade, requested, self.registry.shared,
                                     reroute=self.policy.reroute,
                                     preferred=self.policy.preferred_internal)
        if call.decision.model is None:
            raise PolicyRefused(call.decision.reason)
        return [spec for spec in self.registry.candidates(call.decision.model)
                if decide_model_access(call.effective.grade, spec).allowed]

    def _pii_mode(self, spec: ModelSpec) -> PiiMode:
        return pii_mode_for(spec.zone, internal=self.pii.internal, external=self.pii.external)

    def _guard(self, call: Call, spec: ModelSpec) -> dict[str, Any]:
        """The body as this model may see it: every string checked for personal data for its zone."""
        try:
            call.guarded = guard_request(call.body, self._pii_mode(spec), spec.name)
        except PersonalDataBlocked as exc:
            call.guarded = None
            raise PersonalDataRefused(exc.message) from exc
        except InputNotInspectable as exc:
            call.guarded = None
            raise UninspectableInput(exc.message, param="input") from exc
        except InputTooDeep as exc:
            call.guarded = None
            raise UnsendableRequest(exc.message) from exc
        allowed = known_links(*(message_text(m) for m in call.body.get("messages", ())))
        call.output = OutputGuard(call.guarded.vault, allowed)
        return {**call.guarded.body, "model": spec.name}

    # -- calls ---------------------------------------------------------------------------
    async def chat(self, call: Call) -> dict[str, Any]:
        async def invoke(spec: ModelSpec) -> dict[str, Any]:
            result = await self.backend(spec).chat(self._guard(call, spec))
            for choice in result.get("choices") or ():
                message = choice.get("message") or {}
                if isinstance(message.get("content"), str):
                    message["content"] = call.output.apply(message["content"])
                for tool_call in message.get("tool_calls") or ():  # placeholders back in arguments too
                    function = tool_call.get("function") if isinstance(tool_call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        function["arguments"] = call.output.restore(function["arguments"])
            return result

        result = await self._unary(call, "chat", invoke)
        result["hanchang"] = call.report()
        return result

    async def embeddings(self, call: Call) -> dict[str, Any]:
        async def invoke(spec: ModelSpec) -> dict[str, Any]:
            return await self.backend(spec).embeddings(self._guard(call, spec))

        return await self._unary(call, "embedding", invoke)

    async def _unary(self, call: Call, kind: str,
                     invoke: Callable[[ModelSpec], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        counts: dict[str, Any] = {}
        try:
            candidates = self.route(call, kind)
            await self.admit(call)
            result, spec = await self._first_available(candidates, invoke)
            counts = result.get("usage") or {}
            call.model_used = spec.name
            await self.spend(call, counts)
            result["model"] = spec.name
        except GatewayError as exc:
            await self._recorded(call, counts, exc)
            raise
        except Exception:
            await self._recorded(call, counts, GatewayError("internal error"))
            raise
        except BaseException:  # cancelled: the caller went away before the answer
            self._finish(call, counts, ClientClosed("client closed the request"))
            raise
        await self._recorded(call, counts, None)
        return result

    async def _first_available(self, candidates: list[ModelSpec], invoke):
        problems: list[UpstreamUnavailable] = []
        for spec in candidates:
            try:
                result = await invoke(spec)
            except UpstreamUnavailable as exc:
                metrics.set_upstream_up(spec.name, False)
                problems.append(exc)
                continue
            metrics.set_upstream_up(spec.name, True)
            return result, spec
        raise _none_available(problems, candidates)

    async def start_stream(self, call: Call) -> StreamStart:
        """Open a stream on the first model that produces a first chunk."""
        call.stream = True
        try:
            candidates = self.route(call, "chat")
            await self.admit(call)
            problems: list[UpstreamUnavailable] = []
            for spec in candidates:
                stream = _guard_stream(self.backend(spec).chat_stream(self._guard(call, spec)),
                                       call.output)
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    first = {}
                except UpstreamUnavailable as exc:
                    metrics.set_upstream_up(spec.name, False)
                    problems.append(exc)
                    continue
                metrics.set_upstream_up(spec.name, True)
                call.model_used = spec.name
                call.ttft_ms = int((time.perf_counter() - call.started) * 1000)
                return StreamStart(spec, first, stream)
            raise _none_available(problems, candidates)
        except GatewayError as exc:
            await self._recorded(call, {}, exc)
            raise

    async def finish_stream(self, call: Call, counts: dict[str, Any] | None,
                            error: GatewayError | None) -> None:
        """Record the stream's end. A stream that finished returns only once its records have
        committed, so its last bytes are sent after them (raises `RecordUnavailable` if they
        cannot be)."""
        if error is None and counts:
            self._learn_speed(call, counts)
        await self.spend(call, counts or {})
        await self._recorded(call, counts or {}, error)

    async def record_unanswered(self, call: Call, outcome: str) -> None:
        """A request answered without any model (e.g. no sources found): still one record."""
        call.effective = effective_grade(call.grade, call.items)
        await self._recorded(call, {}, None, outcome)

    # -- records ---------------------------------------------------------------------------
    async def _recorded(self, call: Call, counts: dict[str, Any], error: GatewayError | None,
                        outcome: str | None = None) -> None:
        """Record the call and wait until its usage row and audit record have committed (group
        commit, see `Recorder`): an answer is released only with its records in the database.
        When they cannot be written in time an answer is withheld (`RecordUnavailable`); an
        error already being returned stays that error."""
        committed = self._finish(call, counts, error, outcome)
        if committed is None or not call.await_records or not self.recorder.running:  # None: no recorder
            return
        if isinstance(error, RecordUnavailable):  # refused because records are stuck: no waiting on them
            return
        try:
            await asyncio.wait_for(asyncio.shield(committed), RECORD_WAIT_S)
        except Exception as exc:
            log.error("records of %s not committed within %.0f s: %s", call.request_id, RECORD_WAIT_S,
                      type(exc).__name__)
            if error is None:
                self._withheld(call)
                raise RecordUnavailable("The call's usage and audit records could not be written, so "
                                        "its answer was withheld. Try again shortly; tell the "
                                        "administrator if this persists.",
                                        headers={"x-request-id": call.request_id}) from exc

    def _withheld(self, call: Call) -> None:
        """Queue, behind the call's own records, an audit entry saying its answer was withheld:
        when the trail takes the records again it shows the call made and the answer not
        delivered, not a plain success."""
        p = call.principal
        self.recorder.record(None, AuditEntry(
            category="ai", action=call.endpoint, outcome="withheld", status=RecordUnavailable.status,
            request_id=call.request_id, user_id=p.user_id, user_name=p.user_name,
            agency_code=p.agency_code, role=p.role.value, model_used=call.model_used,
            declared_grade=call.grade.value,
            detail={"reason": "audit_unavailable", "waited_s": RECORD_WAIT_S, "stream": call.stream}))

    def _finish(self, call: Call, counts: dict[str, Any], error: GatewayError | None,
                outcome: str | None = None) -> asyncio.Future | None:
        """Queue the call's metrics, usage row and audit record; returns the commit's future."""
        p = call.principal
        status, code = (error.status, error.code) if error else (200, outcome)
        latency_s = time.perf_counter() - call.started
        latency_ms = int(latency_s * 1000)
        requested = self.registry.requested(call.body.get("model"))[:200]
        tokens_in = int(counts.get("prompt_tokens") or 0)
        tokens_out = int(counts.get("completion_tokens") or 0)
        cost = call.cost_won if call.cost_won is not None else self._cost(call, counts)
        grade = call.effective.grade.value if call.effective else call.grade.value
        # A metric label only ever names a configured model: what a caller types must not create series.
        model_label = call.model_used or self.registry.canonical(requested) or "unknown"
        metrics.observe_call(model=model_label, agency=p.agency_code, service=call.endpoint,
                             outcome=code or "ok", latency_s=latency_s,
                             ttft_s=call.ttft_ms / 1000 if call.ttft_ms is not None else None,
                             tokens_in=tokens_in, tokens_out=tokens_out, cost_won=cost)
        if call.rerouted_from:
            metrics.observe_policy(grade, "reroute")
        elif error is not None and isinstance(error, PolicyRefused):
            metrics.observe_policy(grade, "refuse")
        if call.guarded is not None and call.guarded.counts:
            metrics.observe_pii(call.guarded.counts, call.guarded.mode.value)
        if self.recorder is None:
            return None
        usage = Usage(
            request_id=call.request_id, endpoint=call.endpoint, model_requested=requested,
            status=status, error_code=code, user_id=p.user_id, user_name=p.user_name,
            api_key_id=p.api_key_id, agency_id=p.agency_id, agency_code=p.agency_code,
            model_used=call.model_used, stream=call.stream, tokens_in=tokens_in,
            tokens_out=tokens_out, latency_ms=latency_ms, ttft_ms=call.ttft_ms, cost_won=cost,
            grounded=call.grounded, data_grade=grade, rerouted=call.rerouted_from is not None,
            pii_masked=sum(call.guarded.counts.values()) if call.guarded and call.guarded.mode is not PiiMode.ALLOW
            else 0, agent_id=call.agent_id,
        )
        report = call.report()
        entry = AuditEntry(
            category="ai", action=call.endpoint, outcome=code or "ok", status=status,
            request_id=call.request_id, user_id=p.user_id, user_name=p.user_name,
            agency_code=p.agency_code, role=p.role.value, model_requested=requested,
            model_used=call.model_used, declared_grade=call.grade.value,
            effective_grade=report["data_grade"], grade_reason=report["grade_reason"],
            pii_mode=call.guarded.mode.value if call.guarded else None,
            pii_counts=call.guarded.counts if call.guarded else {},
            source_ids=list(call.source_ids), tokens_in=tokens_in, tokens_out=tokens_out,
            latency_ms=latency_ms,
            detail={k: v for k, v in (("rerouted_from", call.rerouted_from),
                                      ("links_removed", report["links_removed"]),
                                      ("agent_id", call.agent_id),
                                      ("stream", call.stream)) if v},
            prompt_encrypted=self.sealer.seal(p.agency_code, call.body.get("messages") or [])
            if self.sealer else None,
        )
        if isinstance(error, RecordsBacklogged) and self.recorder.full:
            self.recorder.count_refusal(entry)  # counted in the trail, not held one by one
            return None
        return self.recorder.record(usage, entry)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


async def _guard_stream(stream: AsyncIterator[dict[str, Any]],
                        output: OutputGuard) -> AsyncIterator[dict[str, Any]]:
    """Pass streamed text through the output guard, holding back split words (per choice, since
    with n > 1 the choices' chunks interleave)."""
    last: dict[str, Any] = {}

    def tail_chunk(choice: int, delta: dict[str, Any]) -> dict[str, Any]:
        return {"id": last.get("id", ""), "object": "chat.completion.chunk",
                "created": last.get("created", int(time.time())), "model": last.get("model", ""),
                "choices": [{"index": choice, "delta": delta, "finish_reason": None}]}

    def held(choice: int) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if text := output.flush(choice):
            delta["content"] = text
        if calls := output.flush_fragments(choice):
            delta["tool_calls"] = calls
        return delta

    try:
        async for chunk in stream:
            for choice in chunk.get("choices") or ():
                index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    delta["content"] = output.feed(delta["content"], index)
                if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                    for tool_call in delta["tool_calls"]:
                        function = tool_call.get("function") if isinstance(tool_call, dict) else None
                        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                            function["arguments"] = output.feed_fragment(tool_call.get("index", 0),
                                                                         function["arguments"], index)
                if choice.get("finish_reason"):
                    delta = delta if isinstance(delta, dict) else {}
                    rest = held(index)
                    if "content" in rest:
                        delta = {**delta, "content": (delta.get("content") or "") + rest["content"]}
                    if "tool_calls" in rest:
                        delta = {**delta, "tool_calls": [*(delta.get("tool_calls") or ()), *rest["tool_calls"]]}
                    choice["delta"] = delta
            last = chunk
            yield chunk
    except GatewayError:
        for index in output.held_choices():  # what was held back is still the user's answer
            yield tail_chunk(index, held(index))
        raise
    for index in output.held_choices():
        yield tail_chunk(index, held(index))


def trained_model_access(call: Call, spec: ModelSpec, registry: ModelRegistry) -> None:
    """A fine-tuned model answers only its owner agency (to anyone else it does not exist), only
    once promoted (before that, only the eval gate's runs), and everything it says carries the
    grade of what it was trained on (it may have memorised it)."""
    owner = spec.extra.get("owner_agency_id")
    if owner is None:
        return
    if owner != call.principal.agency_id or (spec.extra.get("status") != "served" and call.endpoint != "evals.run"):
        known = ", ".join(sorted(m.name for m in registry.shared))
        raise ModelNotFound(f"The model '{spec.name}' does not exist. Available models: {known}.", param="model")
    floor = GradedItem("model", spec.name, Grade.parse(spec.extra["grade_floor"]))
    if floor not in call.items:
        call.items.append(floor)


def _tokens(counts: dict[str, Any]) -> int:
    return int(counts.get("prompt_tokens") or 0) + int(counts.get("completion_tokens") or 0)


def _none_available(problems: list[UpstreamUnavailable], candidates: list[ModelSpec]) -> UpstreamUnavailable:
    """One error for every candidate failing; a single model's own error (code, Retry-After) is kept."""
    if len(problems) == 1 and type(problems[0]) is not UpstreamUnavailable:
        return problems[0]  # e.g. a restarting engine: its own code and Retry-After
    error = UpstreamUnavailable(" ".join(p.message_en for p in problems) + _fallback_hint(candidates))
    waits = [int(p.headers["Retry-After"]) for p in problems if "Retry-After" in p.headers]
    if waits:
        error.headers["Retry-After"] = str(min(waits))
    return error


def _fallback_hint(candidates: list[ModelSpec]) -> str:
    names = ", ".join(f"'{c.name}'" for c in candidates)
    return f" Tried: {names}. Try again later or choose another model."
