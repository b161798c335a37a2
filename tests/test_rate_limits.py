"""Per-key and per-agency limits, in-process and in Redis; Redis down means refused."""

from __future__ import annotations

import uuid

import httpx
import pytest
from hanchang_devtools.threaded_server import free_port

from conftest import default_models

CHAT = {"model": "internal-a", "messages": [{"role": "user", "content": "a b"}]}
REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


LIMITERS = ["in-process", pytest.param("redis", marks=pytest.mark.skipif(
    not _redis_available(), reason="no Redis on 127.0.0.1:6379"))]


def config(upstream, limits, limiter):
    data = {"models": default_models(upstream.base_url), "limits": limits}
    if limiter == "redis":
        data.update(redis_url=REDIS_URL, redis_prefix=f"test-{uuid.uuid4().hex[:8]}")
    return data


def chat(platform, key=None, body=CHAT):
    return httpx.post(platform.v1 + "/chat/completions", json=body,
                      headers=platform.headers(key), timeout=10)


@pytest.mark.parametrize("limiter", LIMITERS)
def test_requests_per_minute_per_key(platform_factory, upstream, limiter):
    platform = platform_factory(config(upstream, {"per_key": {"requests_per_minute": 3}}, limiter))
    assert [chat(platform).status_code for _ in range(3)] == [200, 200, 200]
    refused = chat(platform)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # Another key of the same agency has its own budget.
    assert chat(platform, platform.new_key()).status_code == 200
    rows = platform.usage_rows(at_least=5)
    assert sorted(r.status for r in rows) == [200, 200, 200, 200, 429]


@pytest.mark.parametrize("limiter", LIMITERS)
def test_tokens_per_minute_per_key(platform_factory, upstream, limiter):
    platform = platform_factory(config(upstream, {"per_key": {"tokens_per_minute": 5}}, limiter))
    assert chat(platform).status_code == 200  # 2 prompt + 3 completion tokens: budget spent
    platform.usage_rows(at_least=1)
    response = chat(platform)
    assert response.status_code == 429 and "tokens" in response.json()["error"]["message"]


@pytest.mark.parametrize("limiter", LIMITERS)
def test_agency_budget_is_shared_by_its_keys(platform_factory, upstream, limiter):
    limits = {"agencies": {"MOIS": {"requests_per_minute": 2}}}
    platform = platform_factory(config(upstream, limits, limiter))
    second_key = platform.new_key()
    assert chat(platform).status_code == 200
    assert chat(platform, second_key).status_code == 200
    response = chat(platform, second_key)
    assert response.status_code == 429 and "agency:MOIS" in response.json()["error"]["message"]


def test_streamed_requests_count_too(platform_factory, upstream):
    platform = platform_factory(config(upstream, {"per_key": {"requests_per_minute": 1}}, "in-process"))
    assert chat(platform, body={**CHAT, "stream": True}).status_code == 200
    assert chat(platform, body={**CHAT, "stream": True}).status_code == 429


def test_unreachable_redis_fails_closed(platform_factory, upstream):
    data = {"models": default_models(upstream.base_url),
            "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    platform = platform_factory(data)
    response = chat(platform)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    assert upstream.behaviour.received == []  # nothing went out unmetered
