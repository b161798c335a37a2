"""Failures found by an attacker's walk that answered 500: each now gets a clear error, and the
failure of one agency's thing never breaks another's."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from hanchang_devtools.tcp_proxy import TcpProxy

from conftest import default_models, launch_platform
from hanchang.core.principal import Role


def call(platform, method, path, key=None, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(key), timeout=30, **kwargs)


def test_an_agent_published_by_its_model_ref_does_not_break_the_model_list(platform):
    with platform.db.session() as session:
        from hanchang.store import accounts
        accounts.create_agency(session, "MOEF", "기획재정부")
    author = platform.new_user_key("author", Role.AGENCY_ADMIN)
    other = platform.new_user_key("reader", Role.USER, agency="MOEF")
    agent = call(platform, "POST", "/api/agents", author, json={"name": "여비 도우미", "instructions": "여비 안내"})
    assert agent.status_code == 201, agent.text
    ref = agent.json()["id"]  # "agent:N", as /v1/models shows it
    assert ref.startswith("agent:")
    for published_as in (ref, ref.split(":")[1]):  # the model ref and the bare number are one asset
        assert call(platform, "POST", "/api/library", author, json={"kind": "agent", "ref": published_as}).is_success
    assert len(call(platform, "GET", "/api/library", other).json()["data"]) == 1
    models = call(platform, "GET", "/v1/models", other)
    assert models.status_code == 200, models.text
    assert [m["id"] for m in models.json()["data"] if m["kind"] == "agent"] == [ref]


@pytest.mark.parametrize("document", [
    "format: hanchang.asset/v1\nkind: agent\nname: x\ncontent: " + "[" * 3000 + "]" * 3000,
    "format: hanchang.asset/v1\nkind: agent\nname: x\ncontent: " + "{a: " * 3000 + "1" + "}" * 3000,
    "format: hanchang.asset/v1\nkind: agent\nname: x\nbomb: &a [x, x, x]\ncontent: {instructions: *a}",
])
def test_a_deeply_nested_or_aliased_asset_file_is_a_clear_4xx(platform, document):
    admin = platform.new_user_key("importer", Role.AGENCY_ADMIN)
    imported = httpx.post(platform.url + "/api/assets/import", content=document.encode(), timeout=30,
                          headers={**platform.headers(admin), "content-type": "application/yaml"})
    assert imported.status_code == 422, imported.text  # as every asset file that cannot be used
    assert imported.json()["error"]["code"] == "invalid_asset"


@pytest.fixture
def database_behind_a_proxy(database_url):
    if not database_url.startswith("postgres"):
        pytest.skip("a PostgreSQL outage (run with HANCHANG_TEST_DATABASE_URL)")
    target = urlsplit(database_url)
    proxy = TcpProxy(target.hostname, target.port or 5432)
    yield database_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}"), proxy
    proxy.close()


def test_a_database_outage_is_a_503_with_retry_after_and_nothing_is_served(tmp_path, database_behind_a_proxy,
                                                                           upstream):
    url, proxy = database_behind_a_proxy
    platform = launch_platform(tmp_path, url, {"models": default_models(upstream.base_url)})
    try:
        key = platform.new_key()  # never looked up yet: not in the key cache
        proxy.cut()
        for path, body in (("/v1/chat/completions", {"model": "internal-a",
                                                     "messages": [{"role": "user", "content": "안녕"}]}),
                           ("/v1/models", None)):
            answer = httpx.request("POST" if body else "GET", platform.url + path, json=body,
                                   headers=platform.headers(key), timeout=60)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "5"
            error = answer.json()["error"]
            assert error["code"] == "store_unavailable" and "다시 시도" in error["message"]
        assert upstream.behaviour.received == []  # no model was called
        proxy.restore()
        for _ in range(20):
            again = httpx.get(platform.url + "/v1/models", headers=platform.headers(key), timeout=30)
            if again.status_code == 200:
                break
        assert again.status_code == 200
    finally:
        proxy.restore()
        platform.server.stop()
        platform.db.dispose()


def test_an_upstream_stream_line_over_256_kib_is_read_whole(platform, upstream):
    upstream.behaviour.reply = "가" * 200_000  # one word: one event line of ~600 KB of JSON
    with httpx.stream("POST", platform.v1 + "/chat/completions", headers=platform.headers(), timeout=60, json={
            "model": "internal-a", "stream": True, "messages": [{"role": "user", "content": "길게"}]}) as response:
        body = response.read().decode()
    assert response.status_code == 200 and body.count("가") == 200_000 and body.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
])
def test_a_non_text_part_for_a_text_model_is_a_clear_400(platform, upstream, part):
    for stream in (False, True):
        answer = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=30, json={
            "model": "internal-a", "stream": stream,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "이 그림은?"}, part]}]})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "messages[0].content[1]"
    assert upstream.behaviour.received == []
