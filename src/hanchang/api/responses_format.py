"""The Responses API (`/v1/responses`) wire format, over the chat path.

A Responses request becomes a chat request (instructions as the system message, input items
as messages, function tools as chat tools, `text.format` as `response_format`); the chat answer
comes back as a `response` object, or streamed as the Responses event types. One way to the
models stays: the same grade policy, personal-data guard, limits, usage and audit (ADR 0012).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from hanchang.api.openai_schemas import ResponsesRequest
from hanchang.core.errors import HanchangError as BadRequest

_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# -- request ------------------------------------------------------------------------------------
def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input (a text, or message / function_call / function_call_output items) as chat messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for position, item in enumerate(value):
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise _bad_item(position, f"role '{role}'")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": _text(item.get("content"), position)})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id") or ""), "type": "function",
                    "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "")}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""),
                             "content": _text(item.get("output"), position)})
        else:
            raise _bad_item(position, f"type '{kind}'")
    return messages


def _text(content: Any, position: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _bad_item(position, f"content part '{kind}'")
            texts.append(str(part.get("text") or part.get("refusal") or ""))
        return "".join(texts)
    raise _bad_item(position, "content")


def _bad_item(position: int, what: str) -> BadRequest:
    return BadRequest(f"input[{position}]의 {what}은(는) 지원하지 않습니다. 글(input_text)과 함수 호출만 보낼 수 "
                      "있습니다.", f"input[{position}]: {what} is not supported; send text (input_text) and "
                      "function calls only.", param=f"input[{position}]")


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for position, tool in enumerate(tools):
        if tool.get("type") != "function" or not tool.get("name"):
            raise BadRequest(f"tools[{position}]: 함수 도구(type: function)만 쓸 수 있습니다. 기관 지식 검색은 "
                             "collections로 요청하세요.", f"tools[{position}]: only function tools are supported; "
                             "search knowledge bases with `collections`.", param=f"tools[{position}]")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        found.append({"type": "function", "function": function})
    return found


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def chat_body(body: ResponsesRequest, history: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chat body to send, and the conversation to keep (history and this input, no instructions)."""
    conversation = [*history, *input_messages(body.input)]
    chat: dict[str, Any] = {"messages": ([{"role": "system", "content": body.instructions}]
                                         if body.instructions else []) + conversation}
    for name, target in (("model", "model"), ("temperature", "temperature"), ("top_p", "top_p"),
                         ("max_output_tokens", "max_tokens"), ("parallel_tool_calls", "parallel_tool_calls"),
                         ("user", "user")):
        if (value := getattr(body, name)) is not None:
            chat[target] = value
    if body.tools:
        chat["tools"] = chat_tools(body.tools)
    if body.tool_choice is not None:
        chat["tool_choice"] = chat_tool_choice(body.tool_choice)
    if fmt := response_format(body.text):
        chat["response_format"] = fmt
    return chat, conversation


# -- response -----------------------------------------------------------------------------------
def message_item(text: str, item_id: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(call: dict[str, Any], item_id: str, status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "function_call", "id": item_id, "call_id": call.get("id") or item_id,
            "name": function.get("name") or "", "arguments": function.get("arguments") or "", "status": status}


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    if message.get("content"):
        items.append(message_item(message["content"], new_id("msg")))
    for call in message.get("tool_calls") or ():
        items.append(call_item(call, new_id("fc")))
    return items


def assistant_message(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The output items as the chat message a later turn sends back (for previous_response_id)."""
    text = "".join(part["text"] for item in items if item["type"] == "message" for part in item["content"])
    calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
             for i in items if i["type"] == "function_call"]
    return {"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})}


def usage(counts: dict[str, Any] | None) -> dict[str, Any] | None:
    if counts is None:
        return None
    prompt, written = int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": written, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + written}


def response_object(response_id: str, created: float, body: ResponsesRequest, model: str, *,
                    status: str, output: list[dict[str, Any]], counts: dict[str, Any] | None = None,
                    finish_reason: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    if status == "completed" and finish_reason == "length":
        status = "incomplete"
    return {
        "id": response_id, "object": "response", "created_at": created, "status": status,
        "completed_at": time.time() if status in ("completed", "incomplete") else None,
        "error": error, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions, "max_output_tokens": body.max_output_tokens, "model": model,
        "output": output, "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id, "store": body.store,
        "temperature": body.temperature, "top_p": body.top_p, "tool_choice": body.tool_choice or "auto",
        "tools": body.tools, "text": body.text or {"format": {"type": "text"}}, "truncation": "disabled",
        "usage": usage(counts), "metadata": body.metadata or {}, "user": body.user,
    }


def from_chat(result: dict[str, Any], response_id: str, created: float, body: ResponsesRequest) -> dict[str, Any]:
    choice = (result.get("choices") or [{}])[0]
    extras = {k: result[k] for k in ("hanchang", "citations") if k in result}
    return {**response_object(response_id, created, body, result.get("model") or "", status="completed",
                              output=output_items(choice.get("message") or {}), counts=result.get("usage"),
                              finish_reason=choice.get("finish_reason")), **extras}


# -- streamed events ----------------------------------------------------------------------------
class EventWriter:
    """Chat chunks in, Responses stream events out (as SSE bytes), in the order OpenAI sends them:
    created, in_progress, per item added → deltas → done, then completed (or failed)."""

    def __init__(self, response_id: str, body: ResponsesRequest, model: str):
        self.response_id, self.body, self.model = response_id, body, model
        self.created = time.time()
        self.sequence = 0
        self.items: list[dict[str, Any]] = []  # output items, in order
        self._text_item: dict[str, Any] | None = None  # the message item being written
        self._calls: dict[int, dict[str, Any]] = {}  # function_call items by the chat tool-call index
        self.finish_reason: str | None = None
        self.final: dict[str, Any] | None = None  # the completed response object, once finished

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(self.response_id, self.created, self.body, self.model, status=status,
                               output=self.items if status != "in_progress" else [], **extra)

    def start(self) -> list[bytes]:
        return [self._event("response.created", response=self._response("in_progress")),
                self._event("response.in_progress", response=self._response("in_progress"))]

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        for choice in (chunk.get("choices") or ())[:1]:  # Responses has one answer (no n)
            delta = choice.get("delta") or {}
            if text := delta.get("content"):
                if self._text_item is None:
                    self._text_item = {**message_item("", new_id("msg")), "status": "in_progress"}
                    self.items.append(self._text_item)
                    index = len(self.items) - 1
                    out.append(self._event("response.output_item.added", output_index=index,
                                           item={**self._text_item, "content": []}))
                    out.append(self._event("response.content_part.added", item_id=self._text_item["id"],
                                           output_index=index, content_index=0,
                                           part={"type": "output_text", "text": "", "annotations": []}))
                self._text_item["content"][0]["text"] += text
                out.append(self._event("response.output_text.delta", item_id=self._text_item["id"],
                                       output_index=self.items.index(self._text_item), content_index=0,
                                       delta=text, logprobs=[]))
            for call in delta.get("tool_calls") or ():
                out += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            item = self._calls[index] = call_item({"id": call.get("id"), "function": {
                "name": function.get("name"), "arguments": ""}}, new_id("fc"), status="in_progress")
            self.items.append(item)
            out.append(self._event("response.output_item.added", output_index=len(self.items) - 1, item=dict(item)))
        if piece := function.get("arguments"):
            item["arguments"] += piece
            out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                   output_index=self.items.index(item), delta=piece))
        return out

    def finish(self, counts: dict[str, Any] | None, extras: dict[str, Any]) -> list[bytes]:
        out = []
        for index, item in enumerate(self.items):
            item["status"] = "completed"
            if item["type"] == "message":
                part = item["content"][0]
                out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                       content_index=0, text=part["text"], logprobs=[]))
                out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                       content_index=0, part=part))
            else:
                out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                       output_index=index, arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.final = {**self._response("completed", counts=counts, finish_reason=self.finish_reason), **extras}
        out.append(self._event("response.completed", response=self.final))
        return out

    def failed(self, code: str, message: str) -> list[bytes]:
        error = {"code": code, "message": message}
        return [self._event("response.failed", response=self._response("failed", error=error))]


def input_items(messages: list[dict[str, Any]], response_id: str) -> list[dict[str, Any]]:
    """What a stored response was given — the conversation before its own output — as Responses
    items (`GET /v1/responses/{id}/input_items`), with ids stable across reads."""
    stem = response_id.removeprefix("resp_")
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages[:-1]):  # the last is the response's own output
        role, content = message.get("role"), message.get("content")
        item_id = f"msg_{stem}_{index}"
        if role == "tool":
            items.append({"type": "function_call_output", "id": item_id, "call_id": message.get("tool_call_id"),
                          "output": content if isinstance(content, str) else "", "status": "completed"})
            continue
        if role == "assistant":
            if content:
                items.append(message_item(content if isinstance(content, str) else "", item_id))
            items += [call_item(call, f"fc_{stem}_{index}_{n}") for n, call in enumerate(message.get("tool_calls")
                                                                                         or ())]
            continue
        text = content if isinstance(content, str) else "".join(
            str(part.get("text") or "") for part in content or () if isinstance(part, dict))
        items.append({"type": "message", "id": item_id, "status": "completed", "role": role,
                      "content": [{"type": "input_text", "text": text}]})
    return items
