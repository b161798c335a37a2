"""Retries and fallback when an upstream dies or errors, and honest errors when all fail."""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import start_upstream

CHAT = {"messages": [{"role": "user", "content": "보고서 요약"}]}


@pytest.fixture
def two_upstreams():
    a, b = start_upstream(prefix="a: "), start_upstream(prefix="b: ")
    yield a, b
    a.server.stop()
    b.server.stop()


def models(a, b, b_grade="C", b_zone="internal"):
    return [
        {"name": "primary", "backend": "openai", "base_url": a.base_url, "zone": "internal",
         "max_grade": "C", "fallbacks": ["secondary"], "max_retries": 1},
        {"name": "secondary", "backend": "openai", "base_url": b.base_url, "zone": b_zone,
         "max_grade": b_grade, "max_retries": 1},
    ]


def test_falls_back_when_the_upstream_dies_mid_run(platform_factory, two_upstreams):
    a, b = two_upstreams
    platform = platform_factory({"models": models(a, b)})
    client = openai.OpenAI(base_url=platform.v1, api_key=platform.key, max_retries=0)
    first = client.chat.completions.create(model="primary", **CHAT)
    assert first.choices[0].message.content.startswith("a: ") and first.model == "primary"
    a.server.stop()  # the primary upstream goes away
    second = client.chat.completions.create(model="primary", **CHAT)
    assert second.choices[0].message.content.startswith("b: ") and second.model == "secondary"
    streamed = list(client.chat.completions.create(model="primary", stream=True, **CHAT))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).startswith("b: ")
    assert streamed[0].model == "secondary"
    rows = platform.usage_rows(at_least=3)
    assert [(r.model_requested, r.model_used, r.status) for r in rows] == [
        ("primary", "primary", 200), ("primary", "secondary", 200), ("primary", "secondary", 200)]


def test_5xx_is_retried_then_falls_back(platform_factory, two_upstreams):
    a, b = two_upstreams
    a.behaviour.fail_status = 503
    platform = platform_factory({"models": models(a, b)})
    response = httpx.post(platform.v1 + "/chat/completions", json={"model": "primary", **CHAT},
                          headers=platform.headers(), timeout=10)
    assert response.status_code == 200 and response.json()["model"] == "secondary"
    assert len(a.behaviour.received) == 2  # one try plus max_retries=1


def test_never_falls_back_to_a_lower_clearance(platform_factory, two_upstreams):
    a, b = two_upstreams
    platform = platform_factory({"models": models(a, b, b_grade="O", b_zone="external")})
    a.server.stop()
    response = httpx.post(platform.v1 + "/chat/completions", json={"model": "primary", **CHAT},
                          headers=platform.headers(), timeout=10)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable" and "primary" in error["message"]
    assert b.behaviour.received == []


def test_all_down_is_503_naming_the_models(platform_factory, two_upstreams):
    a, b = two_upstreams
    platform = platform_factory({"models": models(a, b)})
    a.server.stop()
    b.server.stop()
    for stream in (False, True):
        response = httpx.post(platform.v1 + "/chat/completions",
                              json={"model": "primary", "stream": stream, **CHAT},
                              headers=platform.headers(), timeout=10)
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert "'primary'" in message and "'secondary'" in message


def test_upstream_4xx_is_passed_on_without_fallback(platform_factory, two_upstreams):
    a, b = two_upstreams
    a.behaviour.fail_status = 400
    platform = platform_factory({"models": models(a, b)})
    response = httpx.post(platform.v1 + "/chat/completions", json={"model": "primary", **CHAT},
                          headers=platform.headers(), timeout=10)
    assert response.status_code == 400
    assert "injected failure" in response.json()["error"]["message"]
    assert b.behaviour.received == []


def test_stream_broken_mid_way_ends_with_an_error_event(platform_factory, two_upstreams):
    a, b = two_upstreams
    a.behaviour.fail_after_chunks = 1
    platform = platform_factory({"models": models(a, b)})
    with httpx.stream("POST", platform.v1 + "/chat/completions",
                      json={"model": "primary", "stream": True, **CHAT},
                      headers=platform.headers(), timeout=10) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert '"content":"a:"' in events[-2]  # held back by the output guard, then flushed
    assert '"error"' in events[-1] and "mid-stream" in events[-1]
    (row,) = platform.usage_rows()
    assert row.status == 503 and row.stream and row.model_used == "primary"
    # The server keeps serving.
    assert httpx.post(platform.v1 + "/chat/completions", json={"model": "secondary", **CHAT},
                      headers=platform.headers(), timeout=10).status_code == 200


def test_client_leaving_mid_stream_is_recorded_and_harmless(platform_factory, two_upstreams):
    a, b = two_upstreams
    a.behaviour.chunk_delay_s = 0.2
    platform = platform_factory({"models": models(a, b)})
    long_question = {"messages": [{"role": "user", "content": " ".join(["단어"] * 50)}]}
    with httpx.stream("POST", platform.v1 + "/chat/completions",
                      json={"model": "primary", "stream": True, **long_question},
                      headers=platform.headers(), timeout=10) as response:
        next(response.iter_lines())  # read the first event, then hang up
    (row,) = platform.usage_rows(timeout_s=10)
    assert row.status == 499 and row.error_code == "client_closed"
    a.behaviour.chunk_delay_s = 0
    assert httpx.post(platform.v1 + "/chat/completions", json={"model": "primary", **CHAT},
                      headers=platform.headers(), timeout=10).status_code == 200
