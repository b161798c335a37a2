"""Any OpenAI-compatible server (vLLM, Ollama, TGI, llama.cpp server, commercial APIs).

One pooled aiohttp session per upstream for the life of the process (ADR 0003: httpx's
pool costs O(connections) per request and capped the gateway at a few hundred requests/s).
Connect errors, timeouts and 5xx answers are retried with exponential backoff, then reported
as UpstreamUnavailable so the router can fall back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from hanchang.core.models import ModelSpec
from hanchang.gateway.errors import (
    UnsendableRequest,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)
_BACKOFF_BASE_S = 0.05
_RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class OpenAICompatibleBackend:
    def __init__(self, spec: ModelSpec, *, token: str | None = None, read_timeout_s: float | None = -1):
        self.spec = spec
        self._base = (spec.base_url or "").rstrip("/") + "/"
        self._headers = {"content-type": "application/json"}
        token = token or (os.environ.get(spec.api_key_env) if spec.api_key_env else None)
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        # None: no limit between reads (the embedded engine queues requests and polices hangs itself).
        self._read_timeout = spec.timeout_s if read_timeout_s == -1 else read_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the event loop that first uses it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, connect=min(5.0, self.spec.timeout_s),
                                              sock_read=self._read_timeout),
                json_serialize=lambda v: orjson.dumps(v).decode(),
            )
        return self._session

    def _upstream_body(self, body: dict[str, Any]) -> bytes:
        try:
            return orjson.dumps({**body, "model": self.spec.upstream_model or self.spec.name})
        except orjson.JSONEncodeError as exc:  # a lone surrogate, or nesting past 254 levels
            raise UnsendableRequest(
                "The request cannot be sent on: it holds text that is not valid Unicode (a lone "
                f"surrogate) or nests too deeply ({exc}). Fix the text and send it again.") from None

    async def _send(self, path: str, payload: bytes) -> aiohttp.ClientResponse:
        """POST with retries; returns an open response with a 2xx status."""
        session = self._client()
        last_problem = ""
        for attempt in range(self.spec.max_retries + 1):
            if attempt:
                await asyncio.sleep(_BACKOFF_BASE_S * 2 ** (attempt - 1))
            try:
                response = await session.post(self._base + path, data=payload)
            except TimeoutError:
                last_problem = f"no answer within {self.spec.timeout_s:g} s"
                continue
            except _RETRYABLE as exc:  # the address stays in the operator's log, not in the answer
                log.warning("model %s: cannot reach %s (%r)", self.spec.name, self.spec.base_url, exc)
                last_problem = f"cannot reach it ({type(exc).__name__})"
                continue
            if response.status < 400:
                return response
            try:
                text = (await response.read()).decode("utf-8", "replace")[:500]
            except _RETRYABLE:
                text = ""
            response.release()
            if response.status >= 500:
                last_problem = f"it answered {response.status}"
                continue
            raise UpstreamRejected(
                f"Model '{self.spec.name}' rejected the request: {_error_message(text)}",
                status=response.status if response.status != 401 else 502,
            )
        raise UpstreamUnavailable(f"Model '{self.spec.name}' is unavailable: {last_problem}.")

    async def _json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send(path, self._upstream_body(body))
        try:
            raw = await response.read()
        except _RETRYABLE as exc:
            raise UpstreamUnavailable(f"Model '{self.spec.name}' broke off its answer.") from exc
        finally:
            response.release()
        return _parse_json(raw, self.spec.name)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("chat/completions", body)

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("embeddings", body)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = self._upstream_body({**body, "stream": True,
                                       "stream_options": {"include_usage": True}})
        response = await self._send("chat/completions", payload)
        complete = False
        try:
            async for raw_line in sse_lines(response.content, self.spec.name):
                line = raw_line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    complete = True
                    break
                chunk = _parse_json(data, self.spec.name)
                complete = complete or any(c.get("finish_reason") for c in chunk.get("choices") or ()
                                           if isinstance(c, dict))
                yield chunk
            if not complete:  # the connection closed cleanly, but the answer was cut off
                raise UpstreamUnavailable(
                    f"Model '{self.spec.name}' stopped answering mid-stream (the stream ended unfinished).")
        except _RETRYABLE as exc:
            raise UpstreamUnavailable(
                f"Model '{self.spec.name}' stopped answering mid-stream ({type(exc).__name__})."
            ) from exc
        finally:
            response.release()

    async def probe(self) -> dict[str, Any]:
        """Is the upstream answering? (GET /models; any answer below 500 counts, even 401.)"""
        try:
            async with self._client().get(self._base + "models", timeout=aiohttp.ClientTimeout(total=3)) as r:
                ok = r.status < 500
                return {"state": "reachable" if ok else "unavailable", "detail": None if ok else f"HTTP {r.status}"}
        except (*_RETRYABLE, aiohttp.ClientError) as exc:
            return {"state": "unreachable", "detail": type(exc).__name__}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# The longest line of an upstream's event stream read (one chunk's JSON: a long tool call's
# arguments or a whole answer in one event); aiohttp's own line reader stops at 256 KiB.
MAX_SSE_LINE_BYTES = 16 * 1024 * 1024


async def sse_lines(content: aiohttp.StreamReader, model: str) -> AsyncIterator[bytes]:
    """The stream's lines, of any length up to MAX_SSE_LINE_BYTES (then a clear error)."""
    pending: list[bytes] = []
    held = 0
    async for piece in content.iter_any():
        if b"\n" not in piece:
            pending.append(piece)
            held += len(piece)
            if held > MAX_SSE_LINE_BYTES:
                raise UpstreamBadResponse(f"Model '{model}' sent a stream line longer than "
                                          f"{MAX_SSE_LINE_BYTES // (1024 * 1024)} MiB.")
            continue
        lines = (b"".join(pending) + piece if pending else piece).split(b"\n")
        last = lines.pop()
        pending, held = ([last], len(last)) if last else ([], 0)
        for line in lines:
            yield line
    if pending:
        yield b"".join(pending)


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
