"""The engine process: one GGUF model behind the OpenAI wire format, on a loopback port.

Started and watched by `EngineSupervisor` (never by hand): `python -m hanchang.gateway.engine
--model PATH --mode chat|embedding ...`. It binds 127.0.0.1 on a free port, loads the model,
measures its speed, prints one line `{"port": N}` on stdout and serves. Every request but
/health needs the bearer token the supervisor put in HANCHANG_ENGINE_TOKEN, so other local
processes cannot use the model behind the platform's back. It exits when its parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import faulthandler
import hmac
import json
import os
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hanchang.gateway.engine.runner import BadRequest, ChatJob, ChatResult, LlamaRunner

TOKEN_ENV = "HANCHANG_ENGINE_TOKEN"
MAX_CHOICES = 8  # as the gateway allows (`n`)
_END = object()


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status, headers=headers)


class Engine:
    """Queues jobs onto the one model thread and turns their output into OpenAI objects."""

    def __init__(self, runner: LlamaRunner, name: str, token: str, max_queue: int):
        self.runner = runner
        self.name = name
        self.token = token
        self.max_queue = max_queue
        self.pending = 0
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="engine-model")

    # -- admission ----------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        sent = request.headers.get("authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode())

    async def _admit(self, request: Request) -> dict[str, Any] | Response:
        if not self._authorised(request):
            return _error(401, "The engine takes requests from the Hanchang gateway only.", "unauthorised")
        if self.pending >= self.max_queue:
            return _error(503, f"The model has {self.pending} requests waiting; try again shortly.",
                          "engine_busy", {"Retry-After": "5"})
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "The body is not JSON.", "invalid_json")
        if not isinstance(body, dict):
            return _error(400, "The body must be a JSON object.", "invalid_json")
        return body

    async def _on_model_thread(self, work, *args):
        self.pending += 1
        try:
            return await asyncio.wrap_future(self.model_thread.submit(work, *args))
        finally:
            self.pending -= 1

    # -- routes ---------------------------------------------------------------------------
    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.name, "pid": os.getpid(),
                             "pending": self.pending, "system_info": self.runner.system_info(),
                             **self.runner.health()})

    async def models(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(401, "The engine takes requests from the Hanchang gateway only.", "unauthorised")
        return JSONResponse({"object": "list", "data": [
            {"id": self.name, "object": "model", "created": 0, "owned_by": "hanchang-engine"}]})

    async def embeddings(self, request: Request) -> Response:
        body = await self._admit(request)
        if isinstance(body, Response):
            return body
        if self.runner.mode != "embedding":
            return _error(400, f"'{self.name}' is a chat model; it does not make embeddings.", "wrong_model_kind")
        try:
            result = await self._on_model_thread(self.runner.embed, body)
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request")
        result["model"] = self.name
        return JSONResponse(result)

    async def chat(self, request: Request) -> Response:
        body = await self._admit(request)
        if isinstance(body, Response):
            return body
        if self.runner.mode != "chat":
            return _error(400, f"'{self.name}' is an embedding model; it does not chat.", "wrong_model_kind")
        try:
            job = self.runner.prepare(body)
            choices = int(body.get("n") or 1)
        except (BadRequest, TypeError, ValueError) as exc:
            return _error(400, str(exc), "invalid_request")
        if not 1 <= choices <= MAX_CHOICES:
            return _error(400, f"n must be between 1 and {MAX_CHOICES}.", "invalid_request")
        # n > 1: each choice is its own generation of the same prompt, run in turn.
        jobs = [job, *(dataclasses.replace(job, cancelled=threading.Event()) for _ in range(choices - 1))]
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(jobs, completion_id, usage), media_type="text/event-stream")
        answers = []
        try:
            for each in jobs:
                pieces: list[str] = []
                answers.append((await self._on_model_thread(self.runner.run_chat, each, pieces.append), pieces))
        finally:
            for each in jobs:
                each.cancelled.set()  # a caller who left stops the generation at the next token
        output = []
        for index, (result, pieces) in enumerate(answers):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None}
            if result.tool_calls:
                message["tool_calls"] = result.tool_calls
            elif message["content"] is None:
                message["content"] = ""
            output.append({"index": index, "message": message, "finish_reason": result.finish_reason,
                           "logprobs": None})
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()),
            "model": self.name, "choices": output,
            "usage": _usage(answers[0][0].prompt_tokens, sum(r.completion_tokens for r, _ in answers)),
        })

    async def _stream(self, jobs: list[ChatJob], completion_id: str, include_usage: bool):
        created = int(time.time())

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": self.name, "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                                                     "logprobs": None}]}
            return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

        results: list[ChatResult] = []
        try:
            for index, job in enumerate(jobs):
                async for delta, finish in self._generate(job, results):
                    yield chunk(index, delta, finish)
                if len(results) <= index:  # the caller left while the job was queued
                    return
            if include_usage:
                body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                        "model": self.name, "choices": [],
                        "usage": _usage(results[0].prompt_tokens, sum(r.completion_tokens for r in results))}
                yield b"data: " + json.dumps(body).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            for job in jobs:
                job.cancelled.set()

    async def _generate(self, job: ChatJob, results: list[ChatResult]):
        """One generation as (delta, finish_reason) pairs as they come; its ChatResult is appended
        to `results` when it ends (nothing is, when the caller left while it was queued)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def work():
            if job.cancelled.is_set():
                return None
            try:
                return self.runner.run_chat(job, lambda text: loop.call_soon_threadsafe(queue.put_nowait, text))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        future = asyncio.ensure_future(self._on_model_thread(work))
        try:
            role_sent = False
            while (item := await queue.get()) is not _END:
                # The first chunk leaves with the first token, so time-to-first-token stays honest.
                yield {"content": item, **({} if role_sent else {"role": "assistant"})}, None
                role_sent = True
            result = await future
            if result is None:
                return
            role = {} if role_sent else {"role": "assistant"}
            for index, call in enumerate(result.tool_calls):
                yield {**role, "tool_calls": [{"index": index, **call}]}, None
                role = {}
            results.append(result)
            yield role, result.finish_reason
        finally:
            job.cancelled.set()  # a caller who left stops the generation at the next token
            if not future.done():
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([future])


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_worker_app(engine: Engine) -> Starlette:
    return Starlette(routes=[
        Route("/health", engine.health),
        Route("/v1/models", engine.models),
        Route("/v1/chat/completions", engine.chat, methods=["POST"]),
        Route("/v1/embeddings", engine.embeddings, methods=["POST"]),
    ])


def _exit_with_parent() -> None:
    """Never outlive the platform: a killed parent must not leave a model holding memory."""
    parent = os.getppid()
    try:  # Linux: the kernel signals us when the parent goes
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="engine-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hanchang.gateway.engine")
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--name", required=True, help="model name in answers")
    parser.add_argument("--mode", choices=["chat", "embedding"], default="chat")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--request-time-limit", type=float, default=120.0)
    parser.add_argument("--adapters", default=None, help="The folder of LoRA adapters it may load.")
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:
        sys.exit(f"{TOKEN_ENV} is not set; the engine is started by the Hanchang server.")
    _exit_with_parent()
    faulthandler.enable()  # a native fault leaves its stack in the engine log

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until the server takes them
    started = time.monotonic()
    runner = LlamaRunner(args.model, mode=args.mode, n_ctx=args.ctx, threads=args.threads,
                         request_time_limit_s=args.request_time_limit, adapters_dir=args.adapters)
    runner.calibrate()
    print(f"engine '{args.name}' loaded in {time.monotonic() - started:.1f} s; {runner.system_info()}; "
          f"{runner.health()}", file=sys.stderr, flush=True)
    # The supervisor reads exactly one line from stdout; everything else goes to the log (stderr).
    sys.stdout.write(json.dumps({"port": sock.getsockname()[1], "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    engine = Engine(runner, args.name, token, args.max_queue)
    config = uvicorn.Config(create_worker_app(engine), log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
