"""Auth failures and bad requests get OpenAI-shaped errors; nothing crashes the server."""

from __future__ import annotations

import httpx
import pytest

from hanchang.core.principal import Role
from hanchang.store import accounts

CHAT = {"model": "internal-a", "messages": [{"role": "user", "content": "안녕"}]}


def post(platform, body=None, headers=None, **kwargs):
    return httpx.post(platform.v1 + "/chat/completions", json=body if body is not None else CHAT,
                      headers=platform.headers() if headers is None else headers, timeout=10, **kwargs)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_no_key_is_401(platform, headers):
    error = assert_error(post(platform, headers=headers), 401, "invalid_api_key")
    assert "hanchang keys create" in error["message"]


@pytest.mark.parametrize("key", ["nonsense", "hc_000000000000_" + "x" * 43])
def test_bad_key_is_401(platform, key):
    assert_error(post(platform, headers=platform.headers(key)), 401, "invalid_api_key")


def test_a_tampered_key_is_401(platform):
    tampered = platform.key[:-1] + ("A" if platform.key[-1] != "A" else "B")
    assert_error(post(platform, headers=platform.headers(tampered)), 401, "invalid_api_key")


def test_revoked_key_stops_working(platform):
    key = platform.new_key()
    assert post(platform, headers=platform.headers(key)).status_code == 200
    with platform.db.session() as session:
        accounts.revoke_key(session, key)
    platform.server._server.config.app.state.authenticator.forget()  # skip the 5 s cache
    assert_error(post(platform, headers=platform.headers(key)), 401, "invalid_api_key")


def test_disabled_user_key_is_401(platform):
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "lee", Role.USER)
        key = accounts.create_key(session, "MOIS", "lee").secret
        accounts.get_user(session, "MOIS", "lee").disabled = True
    assert_error(post(platform, headers=platform.headers(key)), 401, "invalid_api_key")


def test_unknown_model_is_404_naming_it(platform):
    error = assert_error(post(platform, {**CHAT, "model": "gpt-9"}), 404, "model_not_found")
    assert "gpt-9" in error["message"] and "internal-a" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "internal-a"}, "messages"),
        ({"model": "internal-a", "messages": []}, "messages"),
        ({"model": "internal-a", "messages": [{"role": "king", "content": "x"}]}, "messages[0].role"),
        ({**CHAT, "temperature": 7}, "temperature"),
        ({**CHAT, "max_tokens": 0}, "max_tokens"),
        ({**CHAT, "stream": "perhaps"}, "stream"),
        ({**CHAT, "data_grade": "Z"}, "data_grade"),
        ([1, 2, 3], "body"),
    ],
)
def test_malformed_body_is_422_naming_the_field(platform, body, field):
    error = assert_error(post(platform, body), 422, "invalid_request")
    assert error["param"] == field, error


def test_invalid_json_is_422(platform):
    response = httpx.post(platform.v1 + "/chat/completions", content=b"{not json",
                          headers={**platform.headers(), "content-type": "application/json"})
    assert "not valid JSON" in assert_error(response, 422, "invalid_request")["message"]


def test_oversized_body_is_413(platform):
    huge = {**CHAT, "messages": [{"role": "user", "content": "가" * 9_000_000}]}
    assert_error(post(platform, huge), 413, "request_too_large")


def test_unknown_route_is_openai_shaped_404(platform):
    response = httpx.get(platform.v1 + "/nothing", headers=platform.headers())
    assert_error(response, 404, "not_found")


def test_embedding_model_for_chat_is_400(platform_factory, upstream):
    platform = platform_factory({"models": [
        {"name": "embed", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
         "max_grade": "C", "kind": "embedding"}]})
    assert_error(post(platform, {**CHAT, "model": "embed"}), 400, "wrong_model_kind")


def test_server_survives_garbage(platform):
    garbage = (b"\x00\xff" * 100, b"[" * 10_000, b'{"messages": [{"role": "user", "content": {"a": 1}}]}')
    for payload in garbage:
        response = httpx.post(platform.v1 + "/chat/completions", content=payload,
                              headers={**platform.headers(), "content-type": "application/json"})
        assert response.status_code in (400, 413, 422), response.text
    assert post(platform).status_code == 200


def test_a_chunked_body_over_the_limit_is_413_and_never_forwarded(platform, upstream):
    def body():  # no Content-Length: sent with chunked transfer encoding
        yield b'{"model": "internal-a", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1_000_000
        yield b'"}]}'

    response = httpx.post(platform.v1 + "/chat/completions", content=body(), timeout=30,
                          headers={**platform.headers(), "content-type": "application/json"})
    assert_error(response, 413, "request_too_large")
    assert upstream.behaviour.received == []


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/documents/99999999999999999999"), ("GET", "/api/chunks/18446744073709551616"),
    ("GET", "/api/conversations/9223372036854775808/messages"),
    ("GET", "/api/collections/-99999999999999999999/documents"), ("POST", "/api/actions/99999999999999999999/confirm"),
    ("GET", "/api/collections/6610604871055/documents"), ("DELETE", "/api/conversations/3474382448")])
def test_ids_beyond_the_id_columns_are_a_4xx_not_500(platform, method, path):
    response = httpx.request(method, platform.url + path, headers=platform.headers(), timeout=10)
    assert response.status_code in (404, 422), response.text


def test_a_lone_surrogate_or_deep_nesting_is_a_4xx(platform):
    lone = b'{"model": "internal-a", "messages": [{"role": "user", "content": "\\ud800 hi"}]}'
    deep = b'{"model": "internal-a", "messages": [{"role": "user", "content": "hi"}], "metadata": ' \
        + b'{"a": ' * 600 + b"1" + b"}" * 600 + b"}"
    for payload in (lone, deep):
        response = httpx.post(platform.v1 + "/chat/completions", content=payload, timeout=10,
                              headers={**platform.headers(), "content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
    assert post(platform).status_code == 200


def test_a_204_has_no_body(platform):
    created = httpx.post(platform.url + "/api/conversations", headers=platform.headers(), timeout=10)
    deleted = httpx.delete(f"{platform.url}/api/conversations/{created.json()['id']}", headers=platform.headers(),
                           timeout=10)
    assert deleted.status_code == 204 and deleted.content == b"" and "content-length" not in {
        k.lower() for k, v in deleted.headers.items() if v != "0"}


def test_api_answers_are_not_cached_and_503s_hide_upstream_addresses(platform, upstream):
    models = httpx.get(platform.v1 + "/models", headers=platform.headers(), timeout=10)
    assert models.headers["cache-control"] == "no-store" and models.headers["x-content-type-options"] == "nosniff"
    upstream.server.stop()
    down = post(platform)
    assert down.status_code == 503 and "127.0.0.1" not in down.text and "internal-a" in down.text


def test_an_agency_auditor_does_not_learn_the_size_of_the_whole_trail(platform):
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "auditor", Role.AUDITOR)
        key = accounts.create_key(session, "MOIS", "auditor").secret
    body = httpx.get(platform.url + "/api/audit/verify", headers=platform.headers(key), timeout=10).json()
    assert body["ok"] is True and "checked" not in body


def test_nul_characters_are_a_400_everywhere(platform):
    with_nul = {**CHAT, "messages": [{"role": "user", "content": "안녕\u0000하세요"}]}
    assert_error(post(platform, with_nul), 400, "invalid_request")
    named = httpx.delete(platform.url + "/api/services/draft/templates/a%00b", headers=platform.headers(), timeout=10)
    assert named.status_code == 400
    form = httpx.post(platform.url + "/auth/login", data={"agency": "MOIS", "user": "a\x00", "password": "x"},
                      timeout=10)
    assert form.status_code == 400
