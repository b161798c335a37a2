"""Route a call to a model: policy check, limits, fallback, usage record.

Nothing reaches a backend except through `Gateway`. The data-grade check happens in
`_admissible`, which asks `core.policy.decide_model_access` about every candidate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hanchang.audit.usage import Usage, UsageRecorder
from hanchang.config import LimitsConfig
from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec
from hanchang.core.policy import decide_model_access
from hanchang.core.principal import Principal
from hanchang.gateway.backends import create_backend
from hanchang.gateway.backends.base import Backend
from hanchang.gateway.errors import (
    GatewayError,
    PolicyRefused,
    UpstreamUnavailable,
    WrongModelKind,
)
from hanchang.gateway.limits import Budget, RateLimiter
from hanchang.gateway.registry import ModelRegistry


@dataclass
class Call:
    """One client request as the gateway sees it."""

    principal: Principal
    endpoint: str
    body: dict[str, Any]
    grade: Grade = Grade.OPEN
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)


@dataclass
class StreamStart:
    """A stream whose first chunk has arrived, so the model is committed."""

    model: ModelSpec
    first: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]


class Gateway:
    def __init__(
        self,
        registry: ModelRegistry,
        limiter: RateLimiter,
        limits: LimitsConfig,
        recorder: UsageRecorder | None,
        backend_factory: Callable[[ModelSpec], Backend] = create_backend,
    ):
        self.registry = registry
        self.limiter = limiter
        self.limits = limits
        self.recorder = recorder
        self._factory = backend_factory
        self._backends: dict[str, Backend] = {}

    def backend(self, spec: ModelSpec) -> Backend:
        backend = self._backends.get(spec.name)
        if backend is None:
            backend = self._backends[spec.name] = self._factory(spec)
        return backend

    def budgets(self, principal: Principal) -> list[Budget]:
        agency = self.limits.agencies.get(principal.agency_code, self.limits.per_agency)
        budgets = [Budget(f"agency:{principal.agency_code}", agency.requests_per_minute,
                          agency.tokens_per_minute)]
        if principal.api_key_id is not None:
            key = self.limits.per_key
            budgets.append(Budget(f"key:{principal.api_key_id}", key.requests_per_minute,
                                  key.tokens_per_minute))
        return budgets

    # -- the policy seam ---------------------------------------------------------------
    def _admissible(self, call: Call, requested: ModelSpec) -> list[ModelSpec]:
        """Candidates (requested model first, then fallbacks) that may receive this call's data."""
        decision = decide_model_access(call.grade, requested)
        if not decision.allowed:
            raise PolicyRefused(decision.reason)
        return [spec for spec in self.registry.candidates(requested)
                if decide_model_access(call.grade, spec).allowed]

    def _resolve(self, call: Call, kind: str) -> list[ModelSpec]:
        requested = self.registry.get(str(call.body.get("model") or self.registry.default_model))
        if requested.kind != kind:
            raise WrongModelKind(
                f"Model '{requested.name}' is a {requested.kind} model; it cannot serve {call.endpoint}.",
                param="model",
            )
        return self._admissible(call, requested)

    # -- calls ---------------------------------------------------------------------------
    async def chat(self, call: Call) -> dict[str, Any]:
        return await self._unary(call, "chat", lambda backend, body: backend.chat(body))

    async def embeddings(self, call: Call) -> dict[str, Any]:
        return await self._unary(call, "embedding", lambda backend, body: backend.embeddings(body))

    async def _unary(self, call: Call, kind: str, invoke) -> dict[str, Any]:
        usage = self._usage(call)
        try:
            candidates = self._resolve(call, kind)
            budgets = self.budgets(call.principal)
            await self.limiter.admit(budgets)
            result, spec = await self._first_available(candidates, lambda b: invoke(b, call.body))
            counts = result.get("usage") or {}
            usage.model_used = spec.name
            usage.tokens_in = int(counts.get("prompt_tokens") or 0)
            usage.tokens_out = int(counts.get("completion_tokens") or 0)
            usage.status = 200
            await self.limiter.add_tokens(budgets, usage.tokens_in + usage.tokens_out)
            result["model"] = spec.name
            return result
        except GatewayError as exc:
            usage.status, usage.error_code = exc.status, exc.code
            raise
        finally:
            self._finish(call, usage)

    async def _first_available(self, candidates: list[ModelSpec], invoke):
        problems = []
        for spec in candidates:
            try:
                return await invoke(self.backend(spec)), spec
            except UpstreamUnavailable as exc:
                problems.append(exc.message)
        raise UpstreamUnavailable(" ".join(problems) + _fallback_hint(candidates))

    async def start_stream(self, call: Call) -> tuple[StreamStart, Usage]:
        """Open a stream on the first model that produces a first chunk."""
        usage = self._usage(call)
        usage.stream = True
        try:
            candidates = self._resolve(call, "chat")
            await self.limiter.admit(self.budgets(call.principal))
            problems = []
            for spec in candidates:
                stream = self.backend(spec).chat_stream(call.body)
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    first = {}
                except UpstreamUnavailable as exc:
                    problems.append(exc.message)
                    continue
                usage.model_used = spec.name
                usage.ttft_ms = int((time.perf_counter() - call.started) * 1000)
                return StreamStart(spec, first, stream), usage
            raise UpstreamUnavailable(" ".join(problems) + _fallback_hint(candidates))
        except GatewayError as exc:
            usage.status, usage.error_code = exc.status, exc.code
            self._finish(call, usage)
            raise

    async def finish_stream(self, call: Call, usage: Usage, counts: dict[str, Any] | None,
                            error: GatewayError | None) -> None:
        counts = counts or {}
        usage.tokens_in = int(counts.get("prompt_tokens") or 0)
        usage.tokens_out = int(counts.get("completion_tokens") or 0)
        usage.status, usage.error_code = (error.status, error.code) if error else (200, None)
        await self.limiter.add_tokens(self.budgets(call.principal), usage.tokens_in + usage.tokens_out)
        self._finish(call, usage)

    def _usage(self, call: Call) -> Usage:
        p = call.principal
        return Usage(
            request_id=call.request_id, endpoint=call.endpoint,
            model_requested=str(call.body.get("model") or self.registry.default_model or "")[:200],
            status=500, user_id=p.user_id, user_name=p.user_name, api_key_id=p.api_key_id,
            agency_id=p.agency_id, agency_code=p.agency_code,
        )

    def _finish(self, call: Call, usage: Usage) -> None:
        usage.latency_ms = int((time.perf_counter() - call.started) * 1000)
        if self.recorder is not None:
            self.recorder.record(usage)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


def _fallback_hint(candidates: list[ModelSpec]) -> str:
    names = ", ".join(f"'{c.name}'" for c in candidates)
    return f" Tried: {names}. Try again later or choose another model."
