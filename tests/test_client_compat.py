"""Compatibility with the clients civil servants' tools are built on, used with their defaults
against a real Hanchang and a recording upstream (versions pinned in pyproject's dev extra):
the `openai` package (tools and parse here; chat, streams, responses and embeddings in
test_openai_surface.py and test_gateway_openai_sdk.py), langchain-openai (invoke, stream,
bind_tools, with_structured_output, use_responses_api), llama-index's OpenAILike (its default is
the legacy completions endpoint), and the Node openai package (tests/compat/node, installed by
`./scripts/install dev` with npm ci)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from conftest import default_models

langchain_openai = pytest.importorskip("langchain_openai")
openai_like = pytest.importorskip("llama_index.llms.openai_like")


class Rule(BaseModel):
    answer: str
    days: int


def chat_model(platform, **kwargs):
    return langchain_openai.ChatOpenAI(base_url=platform.v1, api_key=platform.key, model="internal-a",
                                       max_retries=0, **kwargs)


def test_langchain_invoke_and_stream(platform, upstream):
    llm = chat_model(platform)
    reply = llm.invoke("연가 규정을 알려 주세요")
    assert reply.content == "echo: 연가 규정을 알려 주세요"
    assert reply.usage_metadata["output_tokens"] == 5  # words, as the reference upstream counts
    pieces = list(llm.stream("하나 둘 셋"))
    assert "".join(p.content for p in pieces) == "echo: 하나 둘 셋"
    # With a base_url of its own, langchain does not ask for stream usage, and gets none (as from
    # OpenAI); asked (stream_usage), it gets it in the final chunk.
    assert all(p.usage_metadata is None for p in pieces)
    counted = list(chat_model(platform, stream_usage=True).stream("하나 둘 셋"))
    assert sum((p.usage_metadata or {}).get("output_tokens", 0) for p in counted) == 4


def test_langchain_tools_and_structured_output(platform, upstream):
    def lookup_rule(text: str) -> str:
        """규정을 찾습니다."""
        return text

    upstream.behaviour.call_tools = True
    called = chat_model(platform).bind_tools([lookup_rule]).invoke("휴가 규정")
    assert called.tool_calls[0]["name"] == "lookup_rule" and called.tool_calls[0]["args"] == {"text": "휴가 규정"}
    upstream.behaviour.call_tools = False
    upstream.behaviour.reply = json.dumps({"answer": "연 21일", "days": 21}, ensure_ascii=False)
    rule = chat_model(platform).with_structured_output(Rule).invoke("연가 일수는?")
    assert rule == Rule(answer="연 21일", days=21)
    assert upstream.behaviour.received[-1]["response_format"]["type"] == "json_schema"


def test_langchain_through_the_responses_api(platform, upstream):
    llm = chat_model(platform, use_responses_api=True)
    reply = llm.invoke("출장비 기준은?")
    assert reply.text == "echo: 출장비 기준은?"
    streamed = list(llm.stream("하나 둘"))
    assert "".join(p.text for p in streamed) == "echo: 하나 둘"
    rows = platform.usage_rows(at_least=2)
    assert [r.endpoint for r in rows] == ["responses", "responses"]


def test_the_openai_package_tools_and_parse(platform, upstream):
    """The Python `openai` package's tool calls (plain and streamed) and its structured-output
    helpers (`chat.completions.parse`, `responses.parse`)."""
    import openai

    client = openai.OpenAI(base_url=platform.v1, api_key=platform.key, max_retries=0)
    tool = {"type": "function", "function": {"name": "lookup_rule", "description": "규정을 찾습니다",
                                             "parameters": {"type": "object", "properties": {
                                                 "text": {"type": "string"}}, "required": ["text"]}}}
    upstream.behaviour.call_tools = True
    called = client.chat.completions.create(model="internal-a", tools=[tool],
                                            messages=[{"role": "user", "content": "연가 규정"}])
    (call,) = called.choices[0].message.tool_calls
    assert call.function.name == "lookup_rule" and json.loads(call.function.arguments) == {"text": "연가 규정"}
    pieces = [tc for chunk in client.chat.completions.create(
        model="internal-a", tools=[tool], stream=True, messages=[{"role": "user", "content": "출장 규정"}])
        for choice in chunk.choices for tc in choice.delta.tool_calls or ()]
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"text": "출장 규정"}
    upstream.behaviour.call_tools = False
    upstream.behaviour.reply = json.dumps({"answer": "연 21일", "days": 21}, ensure_ascii=False)
    parsed = client.chat.completions.parse(model="internal-a", response_format=Rule,
                                           messages=[{"role": "user", "content": "연가 일수는?"}])
    assert parsed.choices[0].message.parsed == Rule(answer="연 21일", days=21)
    assert upstream.behaviour.received[-1]["response_format"]["json_schema"]["name"] == "Rule"
    from_responses = client.responses.parse(model="internal-a", input="연가 일수는?", text_format=Rule)
    assert from_responses.output_parsed == Rule(answer="연 21일", days=21)
    assert upstream.behaviour.received[-1]["response_format"]["type"] == "json_schema"


def test_llama_index_openai_like_with_its_defaults(platform, upstream):
    llm = openai_like.OpenAILike(api_base=platform.v1, api_key=platform.key, model="internal-a", max_retries=0)
    assert llm.complete("공공데이터 개방 절차").text == "echo: 공공데이터 개방 절차"
    assert "".join(r.delta for r in llm.stream_complete("하나 둘")) == "echo: 하나 둘"
    chat = openai_like.OpenAILike(api_base=platform.v1, api_key=platform.key, model="internal-a",
                                  is_chat_model=True, max_retries=0)
    from llama_index.core.llms import ChatMessage
    assert chat.chat([ChatMessage(role="user", content="안녕")]).message.content == "echo: 안녕"
    rows = platform.usage_rows(at_least=3)
    assert [r.endpoint for r in rows] == ["completions", "completions", "chat.completions"]


NODE_DIR = Path(__file__).parent / "compat" / "node"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not on this machine")
def test_the_node_openai_package_with_its_defaults(platform_factory, upstream):
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run ./scripts/install dev (it runs npm ci there)"
    platform = platform_factory({"models": [
        *default_models(upstream.base_url),
        {"name": "embed", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C", "kind": "embedding"}]})
    env = {**os.environ, "HANCHANG_V1": platform.v1, "HANCHANG_KEY": platform.key,
           "HANCHANG_MODEL": "internal-a", "HANCHANG_EMBED_MODEL": "embed"}
    done = subprocess.run(["node", "compat.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["chat"] == "echo: 연가 규정" and found["stream"] == "echo: 하나 둘 셋"
    assert found["emptyChoiceChunks"] == 0  # no usage-only chunk when the client did not ask
    # The package asks base64 (its default) and decodes float32: Hanchang answers base64 even when
    # the upstream sent floats.
    assert upstream.behaviour.received[2]["encoding_format"] == "base64"
    assert found["embeddingLengths"] == [16, 16]
    assert found["embeddingFirst"] == pytest.approx((hashlib.sha256("가".encode()).digest()[0] - 128) / 128)
    assert found["responseText"] == "echo: 출장비 기준" and found["responseStream"] == "echo: 넷 다섯"
