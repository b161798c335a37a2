"""The legacy `/v1/completions` wire format, over the chat path.

Hanchang's models are chat models (the embedded one and every upstream the platform routes
to), so a prompt goes to the model as one user message and its answer comes back as a
`text_completion`. Going through the chat path keeps one way to the models: the same grade
policy, personal-data guard, limits, budgets, usage row and audit record (ADR 0012).
"""

from __future__ import annotations

from typing import Any

from hanchang.api.openai_schemas import CompletionRequest
from hanchang.core.errors import HanchangError as BadRequest


def chat_body(body: CompletionRequest) -> dict[str, Any]:
    """The chat body for a completion request, or InvalidInput saying what to send instead."""
    prompt = body.prompt
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(p, str) for p in prompt):
            raise BadRequest("prompt는 글(문자열)로 보내 주세요. 토큰 번호 배열은 받지 않습니다.",
                               "Send prompt as text; token arrays are not accepted.", param="prompt")
        if len(prompt) != 1:
            raise BadRequest("요청 하나에 prompt 하나를 보내 주세요(여러 개는 요청을 나누어 보내세요).",
                               "Send one prompt per request (split a batch into several requests).",
                               param="prompt")
        prompt = prompt[0]
    if not prompt:
        raise BadRequest("prompt가 비어 있습니다.", "prompt is empty.", param="prompt")
    for name, wanted in (("suffix", body.suffix is not None), ("logprobs", body.logprobs is not None)):
        if wanted:
            raise BadRequest(f"{name}은(는) 지원하지 않습니다. 빼고 다시 보내 주세요.",
                               f"{name} is not supported here; send the request without it.", param=name)
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise BadRequest("best_of는 n과 같을 때만 받습니다.", "best_of is accepted only when it equals n.",
                           param="best_of")
    chat = body.model_dump(exclude_none=True, exclude={
        "prompt", "echo", "suffix", "logprobs", "best_of", "stream_options", "data_grade", "collections", "as_of"})
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat


def prompt_text(body: CompletionRequest) -> str:
    return body.prompt if isinstance(body.prompt, str) else body.prompt[0]


def completion(result: dict[str, Any], body: CompletionRequest) -> dict[str, Any]:
    """A chat.completion as a text_completion (Hanchang's `hanchang` and `citations` kept)."""
    echo = prompt_text(body) if body.echo else ""
    choices = [{"text": echo + ((choice.get("message") or {}).get("content") or ""), "index": choice.get("index", i),
                "logprobs": None, "finish_reason": choice.get("finish_reason")}
               for i, choice in enumerate(result.get("choices") or ())]
    return {**{k: v for k, v in result.items() if k not in ("choices", "object", "id")},
            "id": "cmpl-" + str(result.get("id", "")).removeprefix("chatcmpl-"), "object": "text_completion",
            "choices": choices}


def chunk(chat_chunk: dict[str, Any], body: CompletionRequest, echoed: set[int]) -> dict[str, Any]:
    """A chat.completion.chunk as a text_completion chunk; `echoed` notes the choices whose
    prompt was already sent back (echo)."""
    choices = []
    for i, choice in enumerate(chat_chunk.get("choices") or ()):
        index = choice.get("index", i)
        text = (choice.get("delta") or {}).get("content") or ""
        if body.echo and index not in echoed:
            echoed.add(index)
            text = prompt_text(body) + text
        choices.append({"text": text, "index": index, "logprobs": None, "finish_reason": choice.get("finish_reason")})
    return {**{k: v for k, v in chat_chunk.items() if k not in ("choices", "object", "id")},
            "id": "cmpl-" + str(chat_chunk.get("id", "")).removeprefix("chatcmpl-"), "object": "text_completion",
            "choices": choices}
