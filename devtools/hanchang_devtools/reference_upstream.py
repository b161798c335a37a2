"""A small, fast OpenAI-compatible server: deterministic answers, for tests and benchmarks.

It answers "echo: <last user message>" (streamed word by word when asked), gives
hash-based embeddings, and can be told to fail so fallbacks can be exercised.
Pure ASGI, so its own overhead stays tiny in gateway benchmarks.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class UpstreamBehaviour:
    model_names: tuple[str, ...] = ("echo",)
    prefix: str = "echo: "
    reply: str | None = None  # answer this text instead of echoing
    replies: list[str] = field(default_factory=list)  # answer these first, one per call, in order
    fail_status: int | None = None  # answer every completion with this status
    fail_after_chunks: int | None = None  # break streams after this many chunks
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0  # pause between streamed chunks
    received: list[dict[str, Any]] = field(default_factory=list)  # bodies seen, for assertions
    call_tools: bool = False  # with tools in the request: call the first, echoing the question in its arguments
    keep_bodies: bool = True
    lora_loads: list[dict[str, Any]] = field(default_factory=list)  # vLLM's load_lora_adapter bodies


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


class ReferenceUpstream:
    def __init__(self, behaviour: UpstreamBehaviour | None = None):
        self.behaviour = behaviour or UpstreamBehaviour()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path.endswith("/models"):
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "reference"}
                    for n in self.behaviour.model_names]
            return await _json(send, 200, {"object": "list", "data": data})
        try:
            request = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return await _json(send, 400, {"error": {"message": "bad json"}})
        if self.behaviour.keep_bodies:
            self.behaviour.received.append(request)
        if self.behaviour.delay_s:
            await asyncio.sleep(self.behaviour.delay_s)
        if self.behaviour.fail_status:
            return await _json(send, self.behaviour.fail_status,
                               {"error": {"message": "injected failure", "type": "server_error"}})
        if path.endswith("/load_lora_adapter"):  # vLLM's LoRA API (--enable-lora, runtime updating)
            self.behaviour.lora_loads.append(request)
            if not request.get("lora_name") or not request.get("lora_path"):
                return await _json(send, 400, {"error": {"message": "lora_name and lora_path are required"}})
            return await _json(send, 200, {"message": f"Success: LoRA adapter '{request['lora_name']}' added"})
        if path.endswith("/chat/completions"):
            return await self._chat(send, request)
        if path.endswith("/embeddings"):
            return await self._embeddings(send, request)
        return await _json(send, 404, {"error": {"message": f"no route {path}"}})

    async def _chat(self, send, request: dict[str, Any]):
        messages = request.get("messages") or []
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        if self.behaviour.replies:
            answer = self.behaviour.replies.pop(0)
        elif self.behaviour.reply is not None:
            answer = self.behaviour.reply
        else:
            answer = self.behaviour.prefix + _text_of(last_user.get("content"))
        # n > 1: choice i (from the second on) ends with " (#i+1)", so choices can be told apart.
        answers = [answer if i == 0 else f"{answer} (#{i + 1})" for i in range(max(1, int(request.get("n") or 1)))]
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages)
        completion_tokens = sum(len(a.split()) for a in answers)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        model = request.get("model", "echo")
        created = int(time.time())
        if self.behaviour.call_tools and request.get("tools"):
            return await self._tool_call(send, request, _text_of(last_user.get("content")), usage, model, created)
        if not request.get("stream"):
            return await _json(send, 200, {
                "id": "chatcmpl-ref", "object": "chat.completion", "created": created,
                "model": model,
                "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": a}}
                            for i, a in enumerate(answers)],
                "usage": usage,
            })
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        pieces = [a.split(" ") for a in answers]
        sent = 0
        for position in range(max(len(words) for words in pieces)):  # the choices' words interleave
            for index, words in enumerate(pieces):
                if position >= len(words):
                    continue
                if self.behaviour.fail_after_chunks is not None and sent >= self.behaviour.fail_after_chunks:
                    raise RuntimeError("injected mid-stream failure")  # uvicorn drops the connection
                if self.behaviour.chunk_delay_s:
                    await asyncio.sleep(self.behaviour.chunk_delay_s)
                word = words[position]
                delta = {"content": word if position == 0 else " " + word}
                if position == 0:
                    delta["role"] = "assistant"
                await _event(send, {"id": "chatcmpl-ref", "object": "chat.completion.chunk",
                                    "created": created, "model": model,
                                    "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
                sent += 1
        for index in range(len(answers)):
            await _event(send, {"id": "chatcmpl-ref", "object": "chat.completion.chunk",
                                "created": created, "model": model,
                                "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            await _event(send, {"id": "chatcmpl-ref", "object": "chat.completion.chunk",
                                "created": created, "model": model, "choices": [], "usage": usage})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _tool_call(self, send, request, question: str, usage, model: str, created: int):
        name = request["tools"][0]["function"]["name"]
        arguments = orjson.dumps({"text": question}).decode()
        call = {"id": "call_ref", "type": "function", "function": {"name": name, "arguments": arguments}}
        if not request.get("stream"):
            return await _json(send, 200, {
                "id": "chatcmpl-ref", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                             "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
                "usage": usage})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        head = {"index": 0, "id": "call_ref", "type": "function", "function": {"name": name, "arguments": ""}}
        pieces = [{"index": 0, "function": {"arguments": arguments[i:i + 5]}} for i in range(0, len(arguments), 5)]
        for tool_call in [head, *pieces]:  # arguments in 5-character pieces, as real servers split them
            await _event(send, {"id": "chatcmpl-ref", "object": "chat.completion.chunk", "created": created,
                                "model": model, "choices": [{"index": 0, "delta": {"tool_calls": [tool_call]},
                                                             "finish_reason": None}]})
        await _event(send, {"id": "chatcmpl-ref", "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _embeddings(self, send, request: dict[str, Any]):
        inputs = request.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [(b - 128) / 128 for b in digest[:16]]})
        tokens = sum(len(str(x).split()) for x in items)
        return await _json(send, 200, {"object": "list", "data": data,
                                       "model": request.get("model", "echo"),
                                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def _json(send, status: int, payload: dict[str, Any]):
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _event(send, payload: dict[str, Any]):
    await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(payload) + b"\n\n",
                "more_body": True})


# For `uvicorn hanchang_devtools.reference_upstream:bench_app` (benchmarks): no body keeping.
bench_app = ReferenceUpstream(UpstreamBehaviour(keep_bodies=False))
