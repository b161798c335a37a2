"""Tool calls written as <tool_call>{json}</tool_call> become OpenAI tool_calls, whole or streamed."""

from __future__ import annotations

import json

import pytest

from hanchang.gateway.engine import tool_calls as tc

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
BOOK = {"type": "function", "function": {"name": "book_room", "parameters": {"type": "object"}}}


def test_a_whole_answer_splits_into_text_and_calls():
    text, calls = tc.parse('먼저 확인합니다.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "서울"}}'
                           '\n</tool_call>\n<tool_call>{"name": "book_room", "arguments": {}}</tool_call>')
    assert text == "먼저 확인합니다."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "book_room"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "서울"}
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]


def test_broken_call_json_stays_text():
    answer = "<tool_call>{not json}</tool_call>"
    assert tc.parse(answer) == (answer, [])
    assert tc.parse("no calls here") == ("no calls here", [])


@pytest.mark.parametrize("pieces", [
    ["안녕", "하세요 <", "tool", "_call>", '{"name": "get_weather", "arguments": {"city": "부산"}}', "</tool_call>"],
    ["안녕하세요 <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"부산\"}}</tool_call>"],
])
def test_streamed_calls_are_held_back_and_text_is_not(pieces):
    stream = tc.ToolCallStream()
    shown = "".join(stream.feed(p) for p in pieces)
    tail, calls = stream.finish()
    assert shown + tail == "안녕하세요 "
    assert calls[0]["function"]["name"] == "get_weather"


def test_a_lone_angle_bracket_is_shown_at_the_end():
    stream = tc.ToolCallStream()
    shown = stream.feed("3 <") + stream.feed("")
    assert shown == "3 "
    assert stream.finish() == ("<", [])
    stream = tc.ToolCallStream()
    assert stream.feed("a <b") == "a <b"


def test_required_and_named_choices_become_schemas():
    assert tc.forced_call_schema([WEATHER], "auto") is None
    named = tc.forced_call_schema([WEATHER, BOOK], {"type": "function", "function": {"name": "book_room"}})
    assert named["properties"]["name"] == {"const": "book_room"}
    required = tc.forced_call_schema([WEATHER, BOOK], "required")
    assert len(required["anyOf"]) == 2
    with pytest.raises(tc.ToolChoiceError, match="not among tools"):
        tc.forced_call_schema([WEATHER], {"type": "function", "function": {"name": "nope"}})
    assert tc.active_tools({"tools": [WEATHER], "tool_choice": "none"}) is None


def test_messages_are_made_ready_for_templates():
    messages = tc.template_messages([
        {"role": "developer", "content": [{"type": "text", "text": "규칙"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
    ])
    assert messages[0] == {"role": "system", "content": "규칙"}
    assert messages[1]["content"] == "" and messages[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


def test_a_bare_or_fenced_call_counts_only_for_a_declared_tool():
    fenced = '```json\n{"name": "get_weather", "arguments": {"city": "Seoul"}}\n```'
    text, calls = tc.parse(fenced, {"get_weather"})
    assert text == "" and json.loads(calls[0]["function"]["arguments"]) == {"city": "Seoul"}
    assert tc.parse(fenced, {"book_room"}) == (fenced, [])
    assert tc.parse('{"a": 1}', {"get_weather"}) == ('{"a": 1}', [])

    stream = tc.ToolCallStream({"get_weather"})
    assert "".join(stream.feed(p) for p in ["```", "json\n", fenced[7:]]) == ""
    assert stream.finish()[1][0]["function"]["name"] == "get_weather"
    stream = tc.ToolCallStream({"get_weather"})
    assert stream.feed("  {\"x\": ") == "" and stream.feed("1}") == ""
    assert stream.finish() == ('  {"x": 1}', [])
