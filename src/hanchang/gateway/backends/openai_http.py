"""Any OpenAI-compatible server (vLLM, Ollama, TGI, llama.cpp server, commercial APIs).

One pooled httpx.AsyncClient per upstream for the life of the process. Connect errors,
timeouts and 5xx answers are retried with exponential backoff, then reported as
UpstreamUnavailable so the router can fall back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from hanchang.core.models import ModelSpec
from hanchang.gateway.errors import UpstreamBadResponse, UpstreamRejected, UpstreamUnavailable

_BACKOFF_BASE_S = 0.05


class OpenAICompatibleBackend:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        headers = {"content-type": "application/json"}
        if spec.api_key_env:
            token = os.environ.get(spec.api_key_env)
            if token:
                headers["authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            base_url=(spec.base_url or "").rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(spec.timeout_s, connect=min(5.0, spec.timeout_s)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=128),
        )

    def _upstream_body(self, body: dict[str, Any]) -> bytes:
        return orjson.dumps({**body, "model": self.spec.upstream_model or self.spec.name})

    async def _send(self, path: str, payload: bytes, *, stream: bool) -> httpx.Response:
        """POST with retries; returns a response with a 2xx status (stream left open if asked)."""
        attempts = self.spec.max_retries + 1
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(_BACKOFF_BASE_S * 2 ** (attempt - 1))
            try:
                request = self._client.build_request("POST", path, content=payload)
                response = await self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                    httpx.ReadError, httpx.WriteError, httpx.PoolTimeout) as exc:
                last_problem = f"cannot reach {self.spec.base_url} ({type(exc).__name__})"
                continue
            except httpx.TimeoutException:
                last_problem = f"no answer from {self.spec.base_url} within {self.spec.timeout_s:g} s"
                continue
            if response.status_code < 400:
                return response
            text = (await response.aread()).decode("utf-8", "replace")[:500]
            await response.aclose()
            if response.status_code >= 500:
                last_problem = f"{self.spec.base_url} answered {response.status_code}"
                continue
            raise UpstreamRejected(
                f"Model '{self.spec.name}' rejected the request: {_error_message(text)}",
                status=response.status_code if response.status_code != 401 else 502,
            )
        raise UpstreamUnavailable(f"Model '{self.spec.name}' is unavailable: {last_problem}.")

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("chat/completions", self._upstream_body(body), stream=False)
        return _parse_json(response.content, self.spec.name)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = self._upstream_body({**body, "stream": True,
                                       "stream_options": {"include_usage": True}})
        response = await self._send("chat/completions", payload, stream=True)
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                yield _parse_json(data.encode(), self.spec.name)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise UpstreamUnavailable(
                f"Model '{self.spec.name}' stopped answering mid-stream ({type(exc).__name__})."
            ) from exc
        finally:
            await response.aclose()

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("embeddings", self._upstream_body(body), stream=False)
        return _parse_json(response.content, self.spec.name)

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse_json(raw: bytes, model: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamBadResponse(f"Model '{model}' answered with something that is not JSON.") from exc
    if not isinstance(value, dict):
        raise UpstreamBadResponse(f"Model '{model}' answered with unexpected JSON.")
    return value


def _error_message(text: str) -> str:
    try:
        value = orjson.loads(text)
        if isinstance(value, dict) and isinstance(value.get("error"), dict):
            return str(value["error"].get("message", text))
    except orjson.JSONDecodeError:
        pass
    return text
