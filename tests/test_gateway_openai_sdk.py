"""The official openai SDK, pointed at Hanchang, works unchanged against an upstream."""

from __future__ import annotations

import openai
import pytest


def client(platform, key=None) -> openai.OpenAI:
    return openai.OpenAI(base_url=platform.v1, api_key=key or platform.key, max_retries=0)


def test_lists_models_with_zone_and_clearance(platform):
    models = client(platform).models.list()
    (model,) = models.data
    assert model.id == "internal-a"
    assert model.model_extra["zone"] == "internal"
    assert model.model_extra["max_grade"] == "C"
    assert model.model_extra["description_ko"] == "내부망 모델 · 기밀까지"


def test_completes_through_an_alias(platform, upstream):
    answer = client(platform).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "안녕하세요 한창"}])
    assert answer.choices[0].message.content == "echo: 안녕하세요 한창"
    assert answer.model == "internal-a"
    assert answer.usage.prompt_tokens == 2
    assert upstream.behaviour.received[-1]["model"] == "internal-a"


def test_streams_with_usage_in_the_final_chunk_when_asked(platform):
    stream = client(platform).chat.completions.create(
        model="internal-a", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "하나 둘 셋"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: 하나 둘 셋"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].model_extra["hanchang"]["data_grade"] == "O"
    assert all(c.model == "internal-a" for c in chunks)


def test_streams_end_without_a_usage_chunk_unless_asked(platform, upstream):
    """As from OpenAI: no usage-only chunk (empty `choices`) unless stream_options asks; what
    Hanchang did rides on the chunk that finishes the answer. The upstream is still asked for usage."""
    chunks = list(client(platform).chat.completions.create(
        model="internal-a", stream=True, messages=[{"role": "user", "content": "하나 둘 셋"}]))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["hanchang"]["data_grade"] == "O"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: 하나 둘 셋"
    assert upstream.behaviour.received[-1]["stream_options"] == {"include_usage": True}
    (row,) = platform.usage_rows(at_least=1)
    assert row.tokens_out == 4 and not row.error_code


def test_n_choices_plain_and_streamed(platform, upstream):
    c = client(platform)
    answer = c.chat.completions.create(model="internal-a", n=3, messages=[{"role": "user", "content": "가 나"}])
    assert [ch.message.content for ch in answer.choices] == ["echo: 가 나", "echo: 가 나 (#2)", "echo: 가 나 (#3)"]
    assert upstream.behaviour.received[-1]["n"] == 3
    # Streamed, the choices' words interleave: each choice's text is guarded on its own.
    chunks = list(c.chat.completions.create(model="internal-a", n=2, stream=True,
                                            messages=[{"role": "user", "content": "가 나 다"}]))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "echo: 가 나 다", 1: "echo: 가 나 다 (#2)"}
    assert sorted(ch.index for chunk in chunks for ch in chunk.choices if ch.finish_reason) == [0, 1]
    with pytest.raises(openai.UnprocessableEntityError):
        c.chat.completions.create(model="internal-a", n=9, messages=[{"role": "user", "content": "x"}])


def test_parameters_pass_through_unchanged(platform, upstream):
    client(platform).chat.completions.create(
        model="internal-a", max_completion_tokens=7, seed=3, logit_bias={"12": 1}, user="kim-42",
        messages=[{"role": "user", "content": "x"}])
    sent = upstream.behaviour.received[-1]
    assert sent["max_completion_tokens"] == 7 and "max_tokens" not in sent
    assert sent["seed"] == 3 and sent["logit_bias"] == {"12": 1} and sent["user"] == "kim-42"


def test_embeddings(platform_factory, upstream):
    platform = platform_factory({"models": [
        {"name": "embed", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C", "kind": "embedding"}]})
    result = client(platform).embeddings.create(model="embed", input=["가", "나"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16


def test_usage_rows_record_every_call(platform):
    c = client(platform)
    c.chat.completions.create(model="internal-a", messages=[{"role": "user", "content": "a b"}])
    list(c.chat.completions.create(model="internal-a", stream=True,
                                   messages=[{"role": "user", "content": "c d e"}]))
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    rows = platform.usage_rows(at_least=3)
    assert [(r.model_requested, r.status, r.stream) for r in rows] == [
        ("internal-a", 200, False), ("internal-a", 200, True), ("nope", 404, False)]
    plain, streamed, missing = rows
    assert (plain.tokens_in, plain.tokens_out) == (2, 3)
    assert streamed.ttft_ms is not None and streamed.tokens_out == 4
    assert plain.agency_code == "MOIS" and plain.user_name == "kim" and plain.api_key_id
    assert missing.error_code == "model_not_found" and missing.model_used is None
