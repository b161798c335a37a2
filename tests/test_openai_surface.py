"""The rest of the OpenAI surface through the official SDK: the legacy completions endpoint and the
Responses API (plain, streamed, tools, stored responses and their owners), each asserted on
what the recording upstream received."""

from __future__ import annotations

import httpx
import openai
import pytest
from sqlalchemy import select

from conftest import default_models
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import AuditRecord, StoredResponse

TOOL = {"type": "function", "name": "lookup_rule", "description": "규정을 찾습니다",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}


def client(platform, key=None) -> openai.OpenAI:
    return openai.OpenAI(base_url=platform.v1, api_key=key or platform.key, max_retries=0)


# -- /v1/completions ----------------------------------------------------------------------------
def test_legacy_completion_plain_echo_and_streamed(platform, upstream):
    c = client(platform)
    done = c.completions.create(model="internal-a", prompt="출장 규정 요약", max_tokens=20)
    assert done.object == "text_completion" and done.choices[0].text == "echo: 출장 규정 요약"
    assert done.usage.completion_tokens == 4 and done.model == "internal-a"
    sent = upstream.behaviour.received[-1]
    assert sent["messages"] == [{"role": "user", "content": "출장 규정 요약"}] and sent["max_tokens"] == 20
    echoed = c.completions.create(model="internal-a", prompt=["가 나"], echo=True, n=2)
    assert [ch.text for ch in echoed.choices] == ["가 나echo: 가 나", "가 나echo: 가 나 (#2)"]
    chunks = list(c.completions.create(model="internal-a", prompt="하나 둘", stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == "echo: 하나 둘"
    assert all(ch.object == "text_completion" and ch.choices for ch in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["hanchang"]["data_grade"] == "O"
    with_usage = list(c.completions.create(model="internal-a", prompt="하나 둘", stream=True,
                                           stream_options={"include_usage": True}))
    assert with_usage[-1].usage.total_tokens == 5 and with_usage[-1].choices == []
    rows = platform.usage_rows(at_least=4)
    assert {r.endpoint for r in rows} == {"completions"} and all(r.status == 200 for r in rows)


def test_legacy_completion_says_what_it_cannot_do(platform, upstream):
    c = client(platform)
    for kwargs, param in (({"prompt": [1, 2, 3]}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
                          ({"prompt": "x", "suffix": "끝"}, "suffix"), ({"prompt": "x", "logprobs": 2}, "logprobs")):
        with pytest.raises(openai.BadRequestError) as raised:
            c.completions.create(model="internal-a", **kwargs)
        assert raised.value.body["param"] == param and raised.value.body["message"]
    assert upstream.behaviour.received == []


# -- /v1/responses ------------------------------------------------------------------------------
def test_response_from_text_and_from_message_items(platform, upstream):
    c = client(platform)
    made = c.responses.create(model="internal-a", instructions="공손하게 답하세요", input="연가 일수는?")
    assert made.object == "response" and made.status == "completed" and made.output_text == "echo: 연가 일수는?"
    assert made.usage.input_tokens == 4 and made.usage.output_tokens == 3  # words, system included
    assert made.model_extra["hanchang"]["data_grade"] == "O"
    assert upstream.behaviour.received[-1]["messages"] == [
        {"role": "system", "content": "공손하게 답하세요"}, {"role": "user", "content": "연가 일수는?"}]
    items = c.responses.create(model="internal-a", max_output_tokens=50, text={"format": {
        "type": "json_schema", "name": "answer", "schema": {"type": "object"}}}, input=[
        {"role": "developer", "content": "짧게"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "첫째"},
                                                        {"type": "input_text", "text": " 둘째"}]}])
    assert items.output_text == "echo: 첫째 둘째"
    sent = upstream.behaviour.received[-1]
    assert sent["messages"] == [{"role": "system", "content": "짧게"}, {"role": "user", "content": "첫째 둘째"}]
    assert sent["max_tokens"] == 50 and sent["response_format"]["type"] == "json_schema"
    with pytest.raises(openai.BadRequestError) as raised:
        c.responses.create(model="internal-a", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.org/a.png"}]}])
    assert "input[0]" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="internal-a", input="x", tools=[{"type": "web_search"}])
    assert len(upstream.behaviour.received) == 2


def test_streamed_response_events_and_the_sdk_helper(platform, upstream):
    c = client(platform)
    events = list(c.responses.create(model="internal-a", input="하나 둘 셋", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: 하나 둘 셋"
    final = events[-1].response
    assert final.output_text == "echo: 하나 둘 셋" and final.usage.output_tokens == 4
    # The SDK's own stream helper accumulates the same answer.
    with c.responses.stream(model="internal-a", input="넷 다섯") as stream:
        assert stream.get_final_response().output_text == "echo: 넷 다섯"


def test_function_calls_then_their_output_continue_a_stored_response(platform, upstream):
    c = client(platform)
    upstream.behaviour.call_tools = True
    asked = c.responses.create(model="internal-a", input="휴가 규정", tools=[TOOL])
    (call,) = [item for item in asked.output if item.type == "function_call"]
    assert call.name == "lookup_rule" and call.arguments == '{"text":"휴가 규정"}' and call.call_id
    assert upstream.behaviour.received[-1]["tools"][0]["function"]["name"] == "lookup_rule"
    streamed = list(c.responses.create(model="internal-a", input="출장 규정", tools=[TOOL], stream=True))
    done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert done[0].arguments == '{"text":"출장 규정"}'
    assert streamed[-1].response.output[0].type == "function_call"
    upstream.behaviour.call_tools = False
    answered = c.responses.create(model="internal-a", previous_response_id=asked.id, tools=[TOOL], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "연 21일"}])
    assert answered.previous_response_id == asked.id
    assert upstream.behaviour.received[-1]["messages"] == [
        {"role": "user", "content": "휴가 규정"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "lookup_rule",
                                                                  "arguments": '{"text":"휴가 규정"}'}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "연 21일"}]


def test_stored_responses_belong_to_their_user(platform, upstream):
    c = client(platform)
    first = c.responses.create(model="internal-a", instructions="규칙 A", input="첫 질문")
    second = c.responses.create(model="internal-a", previous_response_id=first.id, input="둘째 질문")
    # Instructions are not carried over (as OpenAI's); the conversation is.
    assert upstream.behaviour.received[-1]["messages"] == [
        {"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "echo: 첫 질문"},
        {"role": "user", "content": "둘째 질문"}]
    assert c.responses.retrieve(second.id).output_text == "echo: 둘째 질문"
    # Another user of the same agency, and a user of another agency, find nothing.
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
    for key in (platform.new_user_key("park", Role.USER), platform.new_user_key("lee", Role.AGENCY_ADMIN, "MOEF")):
        other = client(platform, key)
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model="internal-a", previous_response_id=first.id, input="훔쳐보기")
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(first.id)
    assert "훔쳐보기" not in str(upstream.behaviour.received)
    # store=false keeps nothing; delete removes.
    unstored = c.responses.create(model="internal-a", input="남기지 마세요", store=False)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(unstored.id)
    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    rows = platform.usage_rows(at_least=3)
    assert {r.endpoint for r in rows} == {"responses"}
    with platform.db.session() as session:
        actions = set(session.scalars(select(AuditRecord.action).where(AuditRecord.category == "ai")))
    assert "responses" in actions


def test_continuing_a_sensitive_response_keeps_its_grade(platform_factory, upstreams):
    """A response declared 민감 (S) answered inside: continuing it towards the external model is
    refused, and the external upstream never receives the earlier turn."""
    internal, external = upstreams
    platform = platform_factory({"models": [
        {"name": "inside", "backend": "openai", "base_url": internal.base_url, "zone": "internal", "max_grade": "C"},
        {"name": "outside", "backend": "openai", "base_url": external.base_url, "zone": "external",
         "max_grade": "O"}]})
    first = httpx.post(platform.v1 + "/responses", headers=platform.headers(), timeout=15, json={
        "model": "inside", "input": "감사 결과 예산 전용 3건", "data_grade": "S"})
    assert first.status_code == 200 and first.json()["hanchang"]["data_grade"] == "S"
    for stream in (False, True):
        refused = httpx.post(platform.v1 + "/responses", headers=platform.headers(), timeout=15, json={
            "model": "outside", "input": "요약해 주세요", "previous_response_id": first.json()["id"],
            "stream": stream})
        assert refused.status_code == 403 and "민감" in refused.json()["error"]["message"]
    assert external.behaviour.received == []


def test_a_failed_model_call_stores_nothing(platform_factory, upstream):
    platform = platform_factory({"models": [{**default_models(upstream.base_url)[0], "max_retries": 0}]})
    c = client(platform)
    upstream.behaviour.fail_status = 500
    with pytest.raises(openai.APIStatusError):
        c.responses.create(model="internal-a", input="실패할 질문")
    upstream.behaviour.fail_status = None
    with platform.db.session() as session:
        assert session.scalars(select(StoredResponse)).all() == []


def test_models_retrieve_names_a_model_an_alias_or_an_agent(platform):
    sdk = client(platform)
    assert sdk.models.retrieve("internal-a").id == "internal-a"
    by_alias = sdk.models.retrieve("default")
    assert by_alias.id == "internal-a" and by_alias.model_extra["max_grade"] == "C"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("gpt-4o")
    assert missing.value.body["code"] == "model_not_found"
    admin = platform.new_user_key("builder", Role.AGENCY_ADMIN)
    agent = httpx.post(platform.url + "/api/agents", headers=platform.headers(admin), timeout=10,
                       json={"name": "여비 도우미", "instructions": "여비 안내"}).json()
    assert sdk.models.retrieve(agent["id"]).model_extra["kind"] == "agent"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("agent:999999")


def test_a_stored_responses_input_items_are_listed_in_pages(platform, upstream):
    sdk = client(platform)
    first = sdk.responses.create(model="internal-a", input="첫 질문", instructions="짧게", store=True)
    second = sdk.responses.create(model="internal-a", input="두 번째 질문", previous_response_id=first.id, store=True)
    items = list(sdk.responses.input_items.list(second.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "assistant"), ("message", "user")]
    assert items[0].content[0].text == "첫 질문" and items[-1].content[0].text == "두 번째 질문"
    page = sdk.responses.input_items.list(second.id, limit=1)  # newest first, as OpenAI's default
    assert [i.content[0].text for i in page.data] == ["두 번째 질문"] and page.has_more
    other = client(platform, platform.new_user_key("other", Role.USER))
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(second.id)
