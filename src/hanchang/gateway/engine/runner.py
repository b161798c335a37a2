"""The model inside the engine process: a GGUF file run by llama.cpp (llama-cpp-python).

Only the engine process imports this module, so a native fault in llama.cpp ends that process
and never the platform. One job runs at a time (a llama.cpp context is not shareable); the
worker queues the rest. Each job reports progress, so the supervisor can tell a long answer
from a hung one, and measures prompt-processing and generation speed, which grounding uses
to size its context.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hanchang.core.models import ModelSpeed
from hanchang.gateway.engine import tool_calls

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.2  # llama-cpp-python's chat default; small models ramble when hotter
_CALIBRATION_TEXT = (
    "디지털플랫폼정부는 모든 데이터가 연결되는 디지털 플랫폼 위에서 국민, 기업, 정부가 함께 사회적 "
    "난제를 해결하고 새로운 가치를 창출하는 정부입니다. 공공기관은 데이터의 보안 등급을 기밀, 민감, "
    "공개로 나누어 관리하고, 등급에 따라 사용할 수 있는 인공지능 모델과 망을 구분합니다. "
) * 3


class BadRequest(ValueError):
    """The request cannot be run as sent; the message says what to change (HTTP 400)."""


@dataclass
class ChatJob:
    """A chat request turned into what llama.cpp runs."""

    prompt: list[int]
    max_tokens: int
    sampling: dict[str, Any]
    grammar: Any = None
    tools: list[dict[str, Any]] | None = None
    forced_call: bool = False  # the answer is the arguments of a required tool call
    adapter: tuple[str, float] | None = None  # a LoRA adapter (GGUF path, scale) applied for this job
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class ChatResult:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class LlamaRunner:
    def __init__(self, model_path: str, *, mode: str, n_ctx: int, threads: int,
                 request_time_limit_s: float, adapters_dir: str | None = None):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama_cpp = llama_cpp
        self.mode = mode
        self.n_ctx = n_ctx
        self.request_time_limit_s = request_time_limit_s
        options: dict[str, Any] = {"model_path": model_path, "n_ctx": n_ctx, "n_threads": threads,
                                   "n_threads_batch": threads, "verbose": False,
                                   "flash_attn": True}  # reads prompts ~6 % faster on 2 cores
        if mode == "embedding":  # one vector per input: the mean of its tokens
            options |= {"embedding": True, "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN}
        self.llm = llama_cpp.Llama(**options)
        self.speed = ModelSpeed()
        self.adapters_dir = os.path.realpath(adapters_dir) if adapters_dir else None
        self._adapters: dict[str, Any] = {}  # path -> loaded LoRA adapter (kept until the process ends)
        self._adapter_active: tuple[str, float] | None = None
        self.busy_since: float | None = None
        self.last_progress = time.monotonic()
        self.jobs_done = 0
        self.formatter = None
        if mode == "chat":
            template = self.llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise RuntimeError(f"{model_path} has no chat template; it cannot serve chat.")
            self.formatter = Jinja2ChatFormatter(template, self._token_text(self.llm.token_eos()),
                                                 self._token_text(self.llm.token_bos()))

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", "replace")

    def system_info(self) -> str:
        return self._llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()

    # -- chat ----------------------------------------------------------------------------
    def prepare(self, body: dict[str, Any]) -> ChatJob:
        """Check and translate an OpenAI chat body; BadRequest says what is wrong."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list.")
        tools = tool_calls.active_tools(body)
        try:
            forced = tool_calls.forced_call_schema(tools, body.get("tool_choice")) if tools else None
        except tool_calls.ToolChoiceError as exc:
            raise BadRequest(str(exc)) from None
        try:
            rendered = self.formatter(messages=tool_calls.template_messages(messages), tools=tools)
        except Exception as exc:  # the template rejected the conversation (e.g. roles out of order)
            raise BadRequest(f"The model's chat template cannot format these messages: {exc}") from None
        prompt_text = rendered.prompt + (tool_calls.OPEN + "\n" if forced else "")
        prompt = self.llm.tokenize(prompt_text.encode("utf-8"), add_bos=not rendered.added_special,
                                   special=True)
        room = self.n_ctx - len(prompt)
        if room < 1:
            raise BadRequest(f"The prompt is {len(prompt)} tokens; this model reads at most {self.n_ctx}. "
                             "Shorten the conversation or the attached text.")
        wanted = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        schema = forced if forced is not None else _response_schema(body.get("response_format"))
        return ChatJob(prompt=prompt, max_tokens=min(int(wanted), room), sampling=_sampling(body),
                       grammar=self._grammar(schema) if schema is not None else None,
                       tools=tools, forced_call=forced is not None, adapter=_adapter(body, self.adapters_dir))

    def _use_adapter(self, adapter: tuple[str, float] | None) -> None:
        """Put this job's LoRA adapter (or none) on the context, loading it the first time it is
        asked for: a new fine-tuned model is served without restarting the engine, and requests
        in flight are not dropped (jobs run one at a time, each with its own adapter)."""
        if adapter == self._adapter_active:
            return
        import ctypes

        llama_cpp = self._llama_cpp
        if adapter is None:
            failed = llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        else:
            path, scale = adapter
            if path not in self._adapters:
                loaded = llama_cpp.llama_adapter_lora_init(self.llm._model.model, path.encode("utf-8"))
                if not loaded:
                    raise BadRequest(f"The LoRA adapter {os.path.basename(path)} cannot be loaded on this model.")
                self._adapters[path] = loaded
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[path])
            failed = llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, adapters, 1, (ctypes.c_float * 1)(scale))
        if failed:
            raise BadRequest("The LoRA adapter could not be applied.")
        self.llm.reset()  # what the context holds was computed with other weights
        self._adapter_active = adapter

    def _grammar(self, schema: dict[str, Any] | bool) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if schema is True:
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:
            raise BadRequest(f"The JSON schema cannot be turned into a grammar: {exc}") from None

    def run_chat(self, job: ChatJob, on_text: Callable[[str], None]) -> ChatResult:
        """Generate; `on_text` receives text that is safe to show (tool calls held back)."""
        started = time.monotonic()
        self._begin()
        try:
            self._use_adapter(job.adapter)
        except BadRequest:
            self._end()
            raise
        cached = self._cached_prefix(job.prompt)
        first_token_at: float | None = None
        over_time = False

        def keep_going(_input_ids, _logits) -> bool:
            nonlocal first_token_at, over_time
            now = time.monotonic()
            self.last_progress = now
            first_token_at = first_token_at or now
            over_time = now - started > self.request_time_limit_s
            return job.cancelled.is_set() or over_time

        from llama_cpp import StoppingCriteriaList

        names = {t["function"]["name"] for t in job.tools or ()}
        stream = tool_calls.ToolCallStream(names)
        answer: list[str] = []
        finish = "stop"
        try:
            for chunk in self.llm.create_completion(
                    prompt=job.prompt, max_tokens=job.max_tokens, grammar=job.grammar, stream=True,
                    stopping_criteria=StoppingCriteriaList([keep_going]), **job.sampling):
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    answer.append(text)
                    if not job.forced_call and (shown := stream.feed(text) if job.tools else text):
                        on_text(shown)
                finish = choice.get("finish_reason") or finish
        finally:
            self._end()
        if over_time:
            finish = "length"
        # llama-cpp-python calls stopping criteria more than once per token: count the answer itself.
        count = len(self.llm.tokenize("".join(answer).encode("utf-8"), add_bos=False)) if answer else 0
        self._measure(len(job.prompt) - cached, count, started, first_token_at)
        calls: list[dict[str, Any]] = []
        if job.forced_call:
            _, calls = tool_calls.parse(tool_calls.OPEN + "".join(answer) + tool_calls.CLOSE, names)
            if not calls:
                finish = "length"  # cut off before the arguments were complete
        elif job.tools:
            tail, calls = stream.finish()
            if tail:
                on_text(tail)
        if calls:
            finish = "tool_calls"
        return ChatResult(finish, len(job.prompt), count, calls)

    def _cached_prefix(self, prompt: list[int]) -> int:
        """Tokens of this prompt already in the context from the last job (llama.cpp reuses them)."""
        try:
            previous = self.llm._input_ids.tolist()
        except AttributeError:
            return 0
        return self.llm.longest_token_prefix(previous, prompt)

    def _measure(self, evaluated: int, generated: int, started: float, first: float | None) -> None:
        if first is None:
            return
        if evaluated >= 32 and first > started:
            self.speed.learn("prefill_tps", evaluated / (first - started))
        if generated >= 8 and (elapsed := time.monotonic() - first) > 0:
            self.speed.learn("decode_tps", (generated - 1) / elapsed)

    def calibrate(self) -> None:
        """One short job at start: warms the context and gives first speed figures."""
        if self.mode == "embedding":
            self.embed({"input": _CALIBRATION_TEXT[:200]})
            return
        job = self.prepare({"messages": [{"role": "user", "content": _CALIBRATION_TEXT + "\n요약:"}],
                            "max_tokens": 12, "temperature": 0})
        self.run_chat(job, lambda _text: None)
        self.llm.reset()  # the next prompt is measured from a clean context

    # -- embeddings -------------------------------------------------------------------------
    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequest("input must be a string or a list of strings. Token-id arrays are "
                             "specific to another tokenizer and cannot be read by this model (with "
                             "LangChain's OpenAIEmbeddings, set check_embedding_ctx_length=False).")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise BadRequest("encoding_format must be 'float' or 'base64'.")
        self._begin()
        try:
            result = self.llm.create_embedding(texts)
        except ValueError as exc:  # e.g. an input longer than the context
            raise BadRequest(str(exc)) from None
        finally:
            self._end()
        if encoding == "base64":
            for item in result["data"]:
                vector = np.asarray(item["embedding"], dtype="<f4")
                item["embedding"] = base64.b64encode(vector.tobytes()).decode("ascii")
        return result

    # -- progress -------------------------------------------------------------------------
    def _begin(self) -> None:
        self.busy_since = self.last_progress = time.monotonic()

    def _end(self) -> None:
        self.busy_since = None
        self.last_progress = time.monotonic()
        self.jobs_done += 1

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "mode": self.mode, "n_ctx": self.n_ctx, "jobs_done": self.jobs_done,
            "busy_s": round(now - self.busy_since, 2) if self.busy_since else None,
            "since_progress_s": round(now - self.last_progress, 2) if self.busy_since else None,
            "prefill_tokens_per_s": _round(self.speed.prefill_tps),
            "decode_tokens_per_s": _round(self.speed.decode_tps),
        }


def _adapter(body: dict[str, Any], adapters_dir: str | None) -> tuple[str, float] | None:
    """The gateway's `hanchang_adapter` ({path, scale}) of a fine-tuned model, checked: a file
    of the platform's adapters folder, and nothing else on the disk."""
    asked = body.get("hanchang_adapter")
    if asked is None:
        return None
    path = asked.get("path") if isinstance(asked, dict) else None
    if not isinstance(path, str) or not path.endswith(".gguf") or not os.path.isfile(path):
        raise BadRequest("hanchang_adapter.path must name a GGUF LoRA adapter file that exists.")
    real = os.path.realpath(path)
    if adapters_dir is None or os.path.commonpath([real, adapters_dir]) != adapters_dir:
        raise BadRequest("hanchang_adapter.path is not one of the platform's adapters.")
    scale = asked.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 4:
        raise BadRequest("hanchang_adapter.scale must be a number in (0, 4].")
    return real, float(scale)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _response_schema(response_format: Any) -> dict[str, Any] | bool | None:
    """OpenAI's `response_format` as a JSON schema to enforce (True: any JSON object)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else True
    if kind == "json_object":
        return response_format.get("schema") or True
    if kind in (None, "text"):
        return None
    raise BadRequest(f"response_format type '{kind}' is not supported; use text, json_object or json_schema.")


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 16 or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("stop must be a non-empty string or a list of up to 16 of them.")
    sampling: dict[str, Any] = {
        "temperature": DEFAULT_TEMPERATURE if body.get("temperature") is None else float(body["temperature"]),
        "top_p": 0.95 if body.get("top_p") is None else float(body["top_p"]),
        "stop": stops,
        "presence_penalty": float(body.get("presence_penalty") or 0.0),
        "frequency_penalty": float(body.get("frequency_penalty") or 0.0),
    }
    if body.get("seed") is not None:
        sampling["seed"] = int(body["seed"])
    return sampling
