"""Tool calls for chat templates that write them as `<tool_call>{json}</tool_call>` (Qwen, Hermes).

The model sees the tools through its own chat template. What it writes back is turned into
OpenAI `tool_calls` here: whole answers with `parse`, streamed ones with `ToolCallStream`,
which lets ordinary text through at once and holds back only what may be the start of a call.
When the caller requires a call (`tool_choice` "required" or a named function), the answer
is forced into that shape by a JSON schema the engine turns into a grammar.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL_OPENINGS = (OPEN, "```", "{")
_FENCED = re.compile(r"(?:```(?:json)?\s*)?(\{.*\})(?:\s*```)?", re.S)
_BLOCK = re.compile(re.escape(OPEN) + r"\s*(.*?)\s*(?:" + re.escape(CLOSE) + r"|$)", re.S)


class ToolChoiceError(ValueError):
    """`tool_choice` names a function that is not among `tools`, or has an unknown form."""


def active_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The function tools the model may call, or None (no tools, or tool_choice 'none')."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("function"), dict) and t["function"].get("name")]
    if not tools or body.get("tool_choice") == "none":
        return None
    return tools


def forced_call_schema(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """A JSON schema every answer must match when a call is required; None when it is optional."""
    if tool_choice in (None, "auto"):
        return None
    if tool_choice == "required":
        chosen = tools
    elif isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            known = ", ".join(t["function"]["name"] for t in tools)
            raise ToolChoiceError(f"tool_choice names '{name}', which is not among tools ({known}).")
    else:
        raise ToolChoiceError("tool_choice must be 'none', 'auto', 'required' or "
                              "{'type': 'function', 'function': {'name': …}}.")
    variants = [{
        "type": "object",
        "properties": {"name": {"const": t["function"]["name"]},
                       "arguments": t["function"].get("parameters") or {"type": "object"}},
        "required": ["name", "arguments"],
    } for t in chosen]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _call(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": value["name"],
                         "arguments": arguments if isinstance(arguments, str)
                         else json.dumps(arguments, ensure_ascii=False)}}


def parse(text: str, names: set[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Split an answer into its plain text and the tool calls it makes (unparseable blocks stay text).

    With `names`, an answer that is nothing but one call as JSON (small models often write it in
    a code fence instead of the template's tags) counts too, if it names one of those tools.
    """
    start = text.find(OPEN)
    if start < 0:
        call = _bare_call(text, names) if names else None
        return ("", [call]) if call else (text, [])
    calls = []
    for match in _BLOCK.finditer(text, start):
        call = _call(match.group(1))
        if call is None:
            return text, []
        calls.append(call)
    return text[:start].rstrip(), calls


def _bare_call(text: str, names: set[str]) -> dict[str, Any] | None:
    match = _FENCED.fullmatch(text.strip())
    call = _call(match.group(1)) if match else None
    if call is None or call["function"]["name"] not in names:
        return None
    return call


def _partial_open_suffix(text: str) -> int:
    """Length of the longest end of `text` that begins `<tool_call>` (to hold back while streaming)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


@dataclass
class ToolCallStream:
    """Streamed text in, text safe to show out; tool calls collected for the end.

    An answer that opens like a call (`<tool_call>`, a code fence, a JSON object) is held until
    it ends; any other answer streams at once, watching only for a `<tool_call>` tag later on.
    """

    names: set[str] = field(default_factory=set)
    held: str = ""
    decided: bool = False  # the answer does not open like a call
    in_call: bool = False
    calls_text: str = field(default="", repr=False)

    def feed(self, piece: str) -> str:
        if self.in_call:
            self.calls_text += piece
            return ""
        text = self.held + piece
        if not self.decided:
            opening = text.lstrip()
            if len(opening) < len(OPEN) and any(p.startswith(opening) for p in _CALL_OPENINGS):
                self.held = text
                return ""
            if any(opening.startswith(p) for p in _CALL_OPENINGS):
                self.in_call, self.held, self.calls_text = True, "", text
                return ""
            self.decided = True
        at = text.find(OPEN)
        if at >= 0:
            self.in_call, self.held, self.calls_text = True, "", text[at:]
            return text[:at]
        keep = _partial_open_suffix(text)
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """What is left to show, and the calls (if the held-back text was not a call, it is shown)."""
        if not self.in_call:
            tail, self.held = self.held, ""
            return tail, []
        _, calls = parse(self.calls_text, self.names)
        return ("", calls) if calls else (self.calls_text, [])


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: text content, tool-call arguments as objects."""
    out = []
    for message in messages:
        m = dict(message)
        content = m.get("content")
        if isinstance(content, list):
            m["content"] = "".join(str(p.get("text", "")) for p in content
                                   if isinstance(p, dict) and p.get("type", "text") == "text")
        elif content is None:
            m["content"] = ""
        if m.get("role") == "developer":
            m["role"] = "system"
        if m.get("tool_calls"):
            m["tool_calls"] = [_template_call(c) for c in m["tool_calls"] if isinstance(c, dict)]
        out.append(m)
    return out


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}
