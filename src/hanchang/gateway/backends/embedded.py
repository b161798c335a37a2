"""The embedded model: a GGUF file served by a supervised engine process (see gateway.engine).

To the gateway it is one more OpenAI-compatible upstream — the same HTTP backend as vLLM or a
commercial API, so there is one code path to models. What this adds: the engine is started
on first use (or at serve), and a call broken by the engine's crash or hang becomes a 503
with Retry-After while the supervisor restarts it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from hanchang.core.models import ModelSpec, ModelSpeed
from hanchang.gateway.backends.openai_http import OpenAICompatibleBackend
from hanchang.gateway.engine.supervisor import EngineSupervisor
from hanchang.gateway.errors import GatewayError, UpstreamUnavailable


class EmbeddedBackend:
    def __init__(self, spec: ModelSpec, home: Path):
        self.spec = spec
        self.supervisor = EngineSupervisor(spec, home)
        self._http: OpenAICompatibleBackend | None = None
        self._http_url: str | None = None

    async def _client(self) -> OpenAICompatibleBackend:
        url = await self.supervisor.ensure_ready()
        if self._http is None or self._http_url != url:  # a restarted engine listens elsewhere
            if self._http is not None:
                await self._http.aclose()
            upstream = dataclasses.replace(self.spec, base_url=url, max_retries=0, upstream_model=None)
            self._http = OpenAICompatibleBackend(upstream, token=self.supervisor.token, read_timeout_s=None)
            self._http_url = url
        return self._http

    async def _broken(self, exc: UpstreamUnavailable) -> UpstreamUnavailable:
        restarting = await self.supervisor.failure(exc.message_en)
        if restarting is not None:
            return restarting
        return UpstreamUnavailable(f"The embedded model '{self.spec.name}' did not answer; try again.")

    async def _unary(self, send: Callable[[OpenAICompatibleBackend], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """One request to the engine; a failure may mean the engine stopped (then it restarts)."""
        client = await self._client()
        try:
            return await send(client)
        except UpstreamUnavailable as exc:
            raise await self._broken(exc) from exc

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._unary(lambda client: client.chat(body))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        client = await self._client()
        try:
            async for chunk in client.chat_stream(body):
                yield chunk
        except UpstreamUnavailable as exc:
            raise await self._broken(exc) from exc

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._unary(lambda client: client.embeddings(body))

    async def measured_speed(self) -> ModelSpeed:
        """The engine's own figures (it measures itself at start); started here if idle."""
        try:
            await self.supervisor.ensure_ready()
        except GatewayError:
            return ModelSpeed()  # the call itself will say what is wrong
        return self.supervisor.speed()

    async def start(self) -> None:
        await self.supervisor.start()

    def status(self) -> dict[str, Any]:
        return self.supervisor.status()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.supervisor.stop()
