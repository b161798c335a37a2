"""The embedded model: a GGUF file run in-process by llama-cpp-python.

The model loads lazily on first use. Generation runs in a worker thread so the event
loop never blocks; one generation at a time, since a llama.cpp context is not shareable.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hanchang.core.models import ModelSpec
from hanchang.gateway import local_model
from hanchang.gateway.errors import LocalModelMissing, UpstreamRejected

_PASSED_THROUGH = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty",
                   "frequency_penalty", "response_format")
_DEFAULT_MAX_TOKENS = 512


def _llama_response_format(wanted: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `json_schema` response format in llama-cpp-python's spelling (json_object + schema)."""
    if wanted.get("type") == "json_schema":
        schema = (wanted.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"schema": schema} if schema else {})}
    return wanted
_END = object()


class LlamaCppBackend:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self._llm: Any = None
        self._embedder: Any = None
        self._load_lock = threading.Lock()
        self._turn = asyncio.Semaphore(1)

    # -- loading -------------------------------------------------------------------
    def _model_path(self) -> Path:
        path = Path(self.spec.path or "")
        if path.name == local_model.FILENAME:
            # The packaged default: built from its PyPI slices on first use, hash-checked.
            return local_model.assemble(path).path
        if not path.is_file():
            raise LocalModelMissing(
                f"Model file {path} for '{self.spec.name}' does not exist. Check 'path' in the config."
            )
        return path

    def _load(self, *, embedding: bool = False) -> Any:
        with self._load_lock:
            current = self._embedder if embedding else self._llm
            if current is not None:
                return current
            try:
                from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama
            except ImportError as exc:
                raise LocalModelMissing(
                    "llama-cpp-python is not installed. " + local_model.INSTALL_HINT
                ) from exc
            threads = self.spec.extra.get("threads") or max(1, os.cpu_count() or 1)
            llm = Llama(model_path=str(self._model_path()), n_ctx=self.spec.context_window,
                        n_threads=threads, embedding=embedding, verbose=False,
                        # One vector per input (mean of its tokens), as /v1/embeddings promises.
                        **({"pooling_type": LLAMA_POOLING_TYPE_MEAN} if embedding else {}))
            if embedding:
                self._embedder = llm
            else:
                self._llm = llm
            return llm

    # -- chat --------------------------------------------------------------------------
    def _arguments(self, body: dict[str, Any]) -> dict[str, Any]:
        args = {k: body[k] for k in _PASSED_THROUGH if body.get(k) is not None}
        if "response_format" in args:
            args["response_format"] = _llama_response_format(args["response_format"])
        args.setdefault("max_tokens", _DEFAULT_MAX_TOKENS)
        args["messages"] = body["messages"]
        return args

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._turn:
            llm = await asyncio.to_thread(self._load)
            try:
                result = await asyncio.to_thread(llm.create_chat_completion, **self._arguments(body))
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise UpstreamRejected(f"Model '{self.spec.name}': {exc}", status=400) from exc
        result["model"] = self.spec.name
        return result

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async with self._turn:
            llm = await asyncio.to_thread(self._load)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            cancelled = threading.Event()
            args = self._arguments(body)
            prompt_tokens = _count_prompt_tokens(llm, body["messages"])

            def produce() -> None:
                try:
                    for chunk in llm.create_chat_completion(stream=True, **args):
                        if cancelled.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, chunk)
                except Exception as exc:  # surfaced to the caller below
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

            worker = threading.Thread(target=produce, name="llamacpp-generate", daemon=True)
            worker.start()
            completion_tokens = 0
            chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, ValueError):
                        raise UpstreamRejected(f"Model '{self.spec.name}': {item}", status=400)
                    if isinstance(item, Exception):
                        raise item
                    item["model"] = self.spec.name
                    if item["choices"] and item["choices"][0].get("delta", {}).get("content"):
                        completion_tokens += 1  # llama.cpp streams one token per chunk
                    yield item
                yield {
                    "id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": self.spec.name, "choices": [],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                }
            finally:
                cancelled.set()
                # Wait for the worker so the next turn never shares the llama context with it.
                await asyncio.to_thread(worker.join)

    # -- embeddings ------------------------------------------------------------------------
    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._turn:
            llm = await asyncio.to_thread(self._load, embedding=True)
            result = await asyncio.to_thread(llm.create_embedding, body["input"])
        result["model"] = self.spec.name
        return result

    async def aclose(self) -> None:
        for llm in (self._llm, self._embedder):
            if llm is not None and hasattr(llm, "close"):
                llm.close()
        self._llm = self._embedder = None


def _count_prompt_tokens(llm: Any, messages: list[dict[str, Any]]) -> int:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    try:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False))
    except Exception:  # counting is best effort; generation must not fail for it
        return max(1, len(text) // 2)
