"""A fine-tuned model: its base model's backend, with its LoRA adapter named on every request.

On the embedded engine the adapter travels as `hanchang_adapter` ({path, scale}) and the engine
puts it on its context for that request only (a new adapter needs no restart). On an upstream
vLLM server (`--enable-lora`) the request names the adapter as its model: vLLM's LoRA API loads
it once (`POST /v1/load_lora_adapter` with `lora_name` and `lora_path`) and serves it by name.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from hanchang.core.models import ModelSpec
from hanchang.gateway.backends.base import Backend
from hanchang.gateway.errors import UpstreamUnavailable, WrongModelKind


class AdapterBackend:
    def __init__(self, spec: ModelSpec, base: Backend, base_spec: ModelSpec):
        self.spec, self.base, self.base_spec = spec, base, base_spec
        self._loaded = asyncio.Lock()
        self._upstream_has_it = False

    async def _load_on_upstream(self) -> None:
        """vLLM: `POST /v1/load_lora_adapter` once, before the first request names it."""
        async with self._loaded:
            if self._upstream_has_it:
                return
            key = os.environ.get(self.base_spec.api_key_env or "", "")
            body = {"lora_name": self.spec.extra["lora_name"], "lora_path": self.spec.extra["lora_path"]}
            try:
                async with httpx.AsyncClient(timeout=self.base_spec.timeout_s) as client:
                    response = await client.post(self.base_spec.base_url.rstrip("/") + "/load_lora_adapter",
                                                 json=body, headers={"Authorization": f"Bearer {key}"} if key else {})
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"'{self.base_spec.name}' did not load the adapter: {exc}") from None
            if response.status_code >= 400 and "already" not in response.text:
                raise UpstreamUnavailable(f"'{self.base_spec.name}' refused the adapter "
                                          f"({response.status_code}): {response.text[:200]}")
            self._upstream_has_it = True

    async def _body(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.base_spec.backend == "llamacpp":
            return {**body, "hanchang_adapter": {"path": self.spec.extra["adapter_path"],
                                                 "scale": self.spec.extra.get("lora_scale", 1.0)}}
        await self._load_on_upstream()
        return body  # the adapter's own upstream client names it (its spec's upstream_model)

    def _named(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "model": self.spec.name}

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._named(await self.base.chat(await self._body(body)))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self.base.chat_stream(await self._body(body)):
            yield self._named(chunk)

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raise WrongModelKind(f"'{self.spec.name}' is a chat model; it does not make embeddings.", param="model")

    async def measured_speed(self):
        return await self.base.measured_speed() if hasattr(self.base, "measured_speed") else None

    def status(self) -> dict[str, Any]:
        found = self.base.status() if hasattr(self.base, "status") else {"state": "unknown"}
        return {**found, "name": self.spec.name, "adapter_of": self.base_spec.name}

    async def aclose(self) -> None:
        return None  # the base's backend is closed with the gateway's others
