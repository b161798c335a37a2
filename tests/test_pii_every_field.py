"""Personal data in any field of a request is guarded before it leaves for an external model —
not only message content — and placeholders come back as real values in tool-call arguments,
whole or streamed. Proved by what the recording upstream received."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import start_upstream

RRN = "900101-1234568"  # a valid check digit
PHONE = "010-2345-6789"
TOOL = {"type": "function", "function": {
    "name": "register", "description": f"민원인 {PHONE}에게 회신합니다",
    "parameters": {"type": "object", "properties": {"text": {"type": "string", "description": f"예: {RRN}"}}}}}


@pytest.fixture
def outside(platform_factory):
    upstream = start_upstream(call_tools=True)
    platform = platform_factory({
        "models": [{"name": "ext", "backend": "openai", "base_url": upstream.base_url, "zone": "external",
                    "max_grade": "O", "max_retries": 0},
                   {"name": "ext-embed", "backend": "openai", "base_url": upstream.base_url, "zone": "external",
                    "max_grade": "O", "kind": "embedding", "max_retries": 0}],
        "pii": {"external": "pseudonymize"},
    })
    yield platform, upstream
    upstream.server.stop()


def everything_sent(upstream) -> str:
    return json.dumps(upstream.behaviour.received, ensure_ascii=False)


def test_no_field_carries_personal_data_outside(outside):
    platform, upstream = outside
    body = {
        "model": "ext", "user": f"hong {PHONE}", "metadata": {"민원인": RRN},
        "messages": [
            {"role": "user", "name": "홍길동", "content": "회신해 주세요"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "register",
                                                               "arguments": json.dumps({"rrn": RRN})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"등록됨 {PHONE}"},
            {"role": "user", "content": [{"type": "text", "text": f"주민번호 {RRN} 확인"}]},
        ],
        "tools": [TOOL],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {f"열 {PHONE}": {"type": "string"}}}}},
    }
    reply = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    sent = everything_sent(upstream)
    assert RRN not in sent and PHONE not in sent and "2345-6789" not in sent
    assert "[주민등록번호1]" in sent and "[전화번호1]" in sent
    # The model answered with a call whose arguments repeat the placeholder: the user gets the value.
    arguments = json.loads(reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert RRN in arguments["text"]


def test_streamed_tool_call_arguments_get_their_values_back(outside):
    platform, upstream = outside
    client = openai.OpenAI(base_url=platform.v1, api_key=platform.key, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="ext", stream=True, tools=[TOOL],
        messages=[{"role": "user", "content": f"{RRN} 님께 {PHONE} 번호로 연락"}]))
    arguments = "".join(tc.function.arguments or "" for c in chunks if c.choices
                        for tc in (c.choices[0].delta.tool_calls or ()))
    assert json.loads(arguments)["text"] == f"{RRN} 님께 {PHONE} 번호로 연락"
    assert RRN not in everything_sent(upstream)


def test_embedding_text_is_guarded_and_token_ids_refused(outside):
    platform, upstream = outside
    reply = httpx.post(platform.v1 + "/embeddings", headers=platform.headers(), timeout=30,
                       json={"model": "ext-embed", "input": [f"연락처 {PHONE}", "평범한 문장"]})
    assert reply.status_code == 200 and PHONE not in everything_sent(upstream)
    ids = httpx.post(platform.v1 + "/embeddings", headers=platform.headers(), timeout=30,
                     json={"model": "ext-embed", "input": [[9001, 101, 1234]]})
    assert ids.status_code == 400
    error = ids.json()["error"]
    assert error["code"] == "input_not_inspectable" and "check_embedding_ctx_length" in error["message"]
    assert "9001" not in everything_sent(upstream)
