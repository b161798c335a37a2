"""Connectors as an attacker tries them: what reaches the agency's API is proved by a recording
server, never assumed. A path value cannot leave the operation's path, a connector cannot point
at the platform's own services, a call carries no data above the connector's grade, and what is
sent is what the user was shown."""

from __future__ import annotations

import httpx
import pytest
from hanchang_devtools.recording_api import OPENAPI, Recording, create_recording_app
from hanchang_devtools.threaded_server import ThreadedServer
from sqlalchemy import select

from hanchang.core.principal import Role
from hanchang.guard.destinations import DestinationPolicy, DestinationRefused, GuardedTransport
from hanchang.store.tables import AuditRecord


@pytest.fixture
def recorder():
    recording = Recording()
    server = ThreadedServer(create_recording_app(recording)).start()
    yield server, recording
    server.stop()


@pytest.fixture
def hub(platform_factory, upstreams):
    internal, _ = upstreams
    return platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal", "max_grade": "C"}]})


def register(platform, url, name="기록", **extra):
    import uuid

    admin = platform.headers(platform.new_user_key(f"admin-{uuid.uuid4().hex[:8]}", Role.AGENCY_ADMIN))
    return httpx.post(platform.url + "/api/connectors", headers=admin, timeout=30,
                      json={"name": name, "base_url": url, "spec": OPENAPI, **extra})


def act(platform, upstream, plan: str, data_grade="O", connector="기록"):
    upstream.behaviour.reply = plan
    return httpx.post(platform.url + "/api/services/act", headers=platform.headers(), timeout=60, json={
        "inputs": {"connector": connector, "request": "처리해 주세요"}, "data_grade": data_grade, "model": "int"})


def audit_actions(platform) -> list[str]:
    with platform.db.session() as session:
        return list(session.scalars(select(AuditRecord.action).where(AuditRecord.category == "action")
                                    .order_by(AuditRecord.id)))


# -- a path parameter cannot steer the call ---------------------------------------------------------
def test_a_path_value_never_leaves_the_operations_path(hub, upstreams, recorder):
    internal, _ = upstreams
    server, recording = recorder
    assert register(hub, server.url, auto_approve_reads=True).status_code == 201
    steered = act(hub, internal, '{"operation": "get_booking", "arguments": '
                                 '{"id": "../admin/delete_all?confirm=yes"}}')
    assert steered.status_code == 200, steered.text
    # Sent, as one encoded segment of the operation's own path: never /admin/delete_all.
    assert recording.paths() == ["/bookings/..%2Fadmin%2Fdelete_all%3Fconfirm%3Dyes"]
    assert recording.requests[0]["query"] == ""
    for value in ("..", ".", ""):
        refused = act(hub, internal, f'{{"operation": "get_booking", "arguments": {{"id": "{value}"}}}}')
        assert refused.status_code == 400 and "주소" in refused.json()["error"]["message"]
    for value in ("a#frag", "x/../../admin", "%2e%2e", "a?b=c"):
        act(hub, internal, f'{{"operation": "get_booking", "arguments": {{"id": "{value}"}}}}')
    assert all(p.startswith("/bookings/") and p.count("/") == 2 for p in recording.paths())
    assert audit_actions(hub).count("actions.refuse") == 3


def test_a_header_parameter_cannot_add_a_line(hub, upstreams, recorder):
    internal, _ = upstreams
    server, recording = recorder
    register(hub, server.url, auto_approve_reads=True)
    injected = act(hub, internal, '{"operation": "get_booking", "arguments": '
                                  '{"id": "7", "X-Dept": "a\\r\\nX-Admin: yes"}}')
    assert injected.status_code == 400 and recording.requests == []
    fine = act(hub, internal, '{"operation": "get_booking", "arguments": {"id": "7", "X-Dept": "민원과"}}')
    assert fine.status_code == 400  # a header value is ASCII: a Korean one is refused, not mangled
    ascii_value = act(hub, internal, '{"operation": "get_booking", "arguments": {"id": "7", "X-Dept": "civil"}}')
    assert ascii_value.status_code == 200 and recording.requests[-1]["headers"]["x-dept"] == "civil"
    assert "x-admin" not in recording.requests[-1]["headers"]


def test_a_stored_call_whose_url_was_changed_is_refused_at_confirmation(hub, upstreams, recorder):
    """Defence in depth: the URL is checked again just before sending."""
    internal, _ = upstreams
    server, recording = recorder
    register(hub, server.url)
    action = act(hub, internal, '{"operation": "create_booking", "arguments": {"room": "A101"}}').json()
    action_id = action["meta"]["action"]["id"]
    from hanchang.store.tables import PendingAction
    with hub.db.session() as session:
        session.get(PendingAction, action_id).url = server.url + "/admin/delete_all"
    done = httpx.post(f"{hub.url}/api/actions/{action_id}/confirm", headers=hub.headers(), timeout=10)
    assert done.json()["status"] == "refused" and recording.requests == []
    assert audit_actions(hub)[-1] == "actions.refuse"


# -- where a connector may send --------------------------------------------------------------------
def test_without_an_allow_list_no_connector_can_be_registered(platform_factory, upstream, recorder):
    from conftest import default_models

    server, recording = recorder
    closed = platform_factory({"models": default_models(upstream.base_url), "connectors": {"allowed_hosts": []}})
    refused = register(closed, server.url)
    assert refused.status_code == 400 and "connectors.allowed_hosts" in refused.json()["error"]["message"]
    assert recording.requests == []


def test_loopback_and_unlisted_hosts_are_refused(platform_factory, upstream, recorder):
    from conftest import default_models

    server, recording = recorder
    wild = platform_factory({"models": default_models(upstream.base_url),
                             "connectors": {"allowed_hosts": ["*.localhost", "*.go.kr"]}})
    for url in (f"http://localhost:{server.port}", f"http://127.0.0.1:{server.port}", "http://169.254.169.254/",
                "http://[::1]:6379/", f"http://app.localhost:{server.port}", "http://10.0.0.5:5432/",
                f"http://user@127.0.0.1:{server.port}"):
        refused = register(wild, url, name="x")
        assert refused.status_code == 400, (url, refused.text)
    assert recording.requests == []


def test_a_redirect_is_reported_not_followed(hub, upstreams, recorder):
    internal, _ = upstreams
    server, recording = recorder
    other = Recording()
    elsewhere = ThreadedServer(create_recording_app(other)).start()
    try:
        recording.redirect_to = elsewhere.url.replace("127.0.0.1", "localhost") + "/steal"
        register(hub, server.url, auto_approve_reads=True)
        done = act(hub, internal, '{"operation": "moved", "arguments": {}}').json()
        result = done["meta"]["action"]["result"]
        assert result["status"] == 302 and result["redirect_not_followed"].endswith("/steal")
        assert other.requests == [] and recording.paths() == ["/moved"]
    finally:
        elsewhere.stop()


def _policy(allowed, answers):
    calls = iter(answers)
    return DestinationPolicy(tuple(allowed), resolve=lambda host, port: next(calls))


def test_the_policy_by_entry_kind():
    assert _policy(["api.mois.go.kr"], [["10.1.2.3"]]).check("https://api.mois.go.kr/v1").addresses == ("10.1.2.3",)
    with pytest.raises(DestinationRefused):  # a wildcard never opens a private address
        _policy(["*.mois.go.kr"], [["10.1.2.3"]]).check("https://api.mois.go.kr/v1")
    assert _policy(["*.mois.go.kr"], [["211.188.10.5"]]).check("https://api.mois.go.kr/").host == "api.mois.go.kr"
    assert _policy(["10.1.0.0/16"], [["10.1.2.3"]]).check("http://hr.internal/").addresses == ("10.1.2.3",)
    with pytest.raises(DestinationRefused):  # one address of two outside the network: refused
        _policy(["10.1.0.0/16"], [["10.1.2.3", "127.0.0.1"]]).check("http://hr.internal/")
    with pytest.raises(DestinationRefused):
        _policy(["api.mois.go.kr:8443"], [["10.1.2.3"]]).check("https://api.mois.go.kr/")
    for literal in ("127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0", "[::1]", "10.0.0.1"):
        with pytest.raises(DestinationRefused):  # not listed
            _policy(["*.go.kr"], []).check(f"http://{literal}/")
    for metadata in ("169.254.169.254", "[fd00:ec2::254]"):
        with pytest.raises(DestinationRefused):  # a metadata service even inside an allowed network
            _policy(["0.0.0.0/0", "::/0"], []).check(f"http://{metadata}/")
    assert _policy(["169.254.169.254"], []).check("http://169.254.169.254/").addresses == ("169.254.169.254",)


def test_dns_rebinding_is_refused_at_call_time(recorder):
    """The name resolves to the allowed address when registered and elsewhere when called: the
    second resolution is checked and the connection goes only to a checked address."""
    server, recording = recorder
    answers = iter([["127.0.0.1"], ["127.0.0.1"], ["169.254.169.254"]])
    policy = DestinationPolicy(("booking.test", "127.0.0.1"), resolve=lambda host, port: next(answers))
    policy.check(f"http://booking.test:{server.port}/")  # at registration
    with httpx.Client(transport=GuardedTransport(policy)) as client:
        assert client.get(f"http://booking.test:{server.port}/bookings/1").status_code == 200
        assert recording.requests[-1]["host"] == f"booking.test:{server.port}"  # the name kept for Host
        with pytest.raises(DestinationRefused):
            client.get(f"http://booking.test:{server.port}/bookings/2")
    assert recording.paths() == ["/bookings/1"]


# -- the grade binds a connector as it binds a model ----------------------------------------------
def test_a_connector_receives_nothing_above_its_grade_and_never_auto_approves_above_o(hub, upstreams, recorder):
    internal, _ = upstreams
    server, recording = recorder
    assert register(hub, server.url, auto_approve_reads=True).json()["max_grade"] == "O"  # the default
    search = '{"operation": "search", "arguments": {"q": "SECRET-S 감사 결과"}}'
    refused = act(hub, internal, search, data_grade="S")
    assert refused.status_code == 400 and "민감" in refused.json()["error"]["message"]
    assert recording.requests == [] and audit_actions(hub)[-1] == "actions.refuse"
    # A connector cleared for S receives S data, but only after the user confirms.
    assert register(hub, server.url, name="민감API", auto_approve_reads=True, max_grade="S").status_code == 201
    pending = act(hub, internal, search, data_grade="S", connector="민감API").json()["meta"]
    assert pending["needs_confirmation"] is True and pending["action"]["grade"] == "S" and recording.requests == []
    # Personal data in a read's arguments: shown first, never sent at once.
    with_phone = act(hub, internal, '{"operation": "search", "arguments": {"q": "010-2345-6789 민원"}}').json()["meta"]
    assert with_phone["needs_confirmation"] is True and recording.requests == []
    # An external connector may clear O only.
    external = register(hub, server.url, name="외부", zone="external", max_grade="S")
    assert external.status_code == 400 and "공개" in external.json()["error"]["message"]


# -- what held against an obedient model keeps holding ---------------------------------------------
def test_only_the_picked_connector_and_its_operations_and_writes_wait(hub, upstreams, recorder):
    internal, _ = upstreams
    server, recording = recorder
    register(hub, server.url, auto_approve_reads=True)
    register(hub, server.url, name="다른API", auto_approve_reads=True)
    other = act(hub, internal, '{"connector": "다른API", "operation": "search", "arguments": {"q": "x"}}')
    assert other.status_code == 400
    unknown = act(hub, internal, '{"operation": "drop_all", "arguments": {}}')
    assert unknown.status_code == 400
    write = act(hub, internal, '{"operation": "create_booking", "arguments": {"room": "A101", "title": "예산"}}')
    shown = write.json()["meta"]["action"]
    assert write.json()["meta"]["needs_confirmation"] is True and recording.requests == []  # a write waits
    done = httpx.post(f"{hub.url}/api/actions/{shown['id']}/confirm", headers=hub.headers(), timeout=10).json()
    assert done["status"] == "executed"
    sent = recording.requests[-1]
    # What was sent is what was shown: method, URL, body.
    assert (sent["method"], server.url + sent["raw_path"]) == (shown["method"], shown["url"])
    assert httpx.Response(200, content=sent["body"]).json() == shown["body"]
