"""Hanchang's own MCP endpoint (/mcp) with the official SDK's client, against a real Hanchang and
a recording upstream: the caller's key and rights, agency isolation, nothing above the MCP grade
ceiling returned, grounded answers with citations, work services, and usage recorded."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import default_models
from hanchang.core.grades import Grade
from hanchang.core.pii_modes import PiiMode
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_sources
from hanchang.store import accounts

OPEN_RULE = "출장 여비는 실비로 정산하며 숙박비는 하루 칠만 원을 넘지 않는다."
SECRET_RULE = "감사 결과 예산 전용 세 건이 확인되었다. 감사실 내부 자료이다."
OTHER_RULE = "기획재정부 내부 예산 편성 지침: 숙박비 기준은 별도로 정한다."


@pytest.fixture
def world(platform_factory, upstream, tmp_path):
    platform = platform_factory({"models": default_models(upstream.base_url)})
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
        ids = {"open": kc.create(session, "MOIS", "여비", grade=Grade.OPEN).id,
               "secret": kc.create(session, "MOIS", "감사", grade=Grade.SENSITIVE).id,
               "other": kc.create(session, "MOEF", "예산", grade=Grade.OPEN).id}
    for name, text in (("open", OPEN_RULE), ("secret", SECRET_RULE), ("other", OTHER_RULE)):
        path = tmp_path / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), ids[name],
                       [SourceFile(path, f"upload:{name}.txt", f"{name}.txt")])
    platform.ids = ids
    return platform


def use_mcp(platform, key, work):
    """Run `work(session)` in an MCP client session over streamable HTTP with this key."""
    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http, \
                streamable_http_client(platform.url + "/mcp", http_client=http) as (read, write, *_), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)
    return asyncio.run(run())


def call(platform, key, tool, arguments):
    async def work(session):
        result = await session.call_tool(tool, arguments)
        text = result.content[0].text
        return (None, text) if result.is_error else (json.loads(text), None)
    return use_mcp(platform, key, work)


def test_a_key_is_required_before_anything_mcp(world):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for headers in ({}, {"Authorization": "Bearer hc_wrong"}):
        refused = httpx.post(world.url + "/mcp", json=hello, headers={
            **headers, "accept": "application/json, text/event-stream"}, timeout=10)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "API 키" in refused.json()["error"]["message"]


def test_tools_and_the_callers_own_knowledge_bases(world):
    async def work(session):
        tools = await session.list_tools()
        listed = await session.call_tool("list_knowledge_bases", {})
        return [t.name for t in tools.tools], json.loads(listed.content[0].text)
    names, listed = use_mcp(world, world.key, work)
    assert set(names) == {"list_knowledge_bases", "search_knowledge", "ask", "use_service"}
    bases = {b["name"]: b for b in listed["knowledge_bases"]}
    assert "예산" not in bases  # another agency's collection is not the caller's
    assert bases["여비"]["returned_by_mcp"] and not bases["감사"]["returned_by_mcp"]
    assert listed["max_grade"] == "O"


def test_search_returns_cited_passages_and_withholds_what_is_above_the_ceiling(world):
    found, error = call(world, world.key, "search_knowledge", {"query": "숙박비 정산"})
    assert error is None and found["results"][0]["source"].endswith("open.txt")
    assert "칠만 원" in found["results"][0]["text"] and found["results"][0]["index"] == 1
    secret, _ = call(world, world.key, "search_knowledge",
                     {"query": "감사 결과 예산 전용", "knowledge_bases": ["감사"]})
    assert secret["results"] == [] and secret["withheld"] == 1 and "공개(O)보다 높은" in secret["notice"]
    assert "예산 전용" not in json.dumps(secret, ensure_ascii=False)
    _, refused = call(world, world.key, "search_knowledge", {"query": "숙박비", "knowledge_bases": ["예산"]})
    assert refused and "찾을 수 없" in refused


def test_ask_answers_from_the_knowledge_bases_with_citations(world, upstream):
    answered, error = call(world, world.key, "ask", {"question": "숙박비 한도는?", "knowledge_bases": ["여비"]})
    assert error is None and answered["answer"].startswith("echo:") and answered["data_grade"] == "O"
    assert answered["citations"][0]["source"].endswith("open.txt")
    assert "칠만 원" in str(upstream.behaviour.received[-1]["messages"])
    # Grounded on 민감 material: answered inside, never released over MCP.
    _, refused = call(world, world.key, "ask", {"question": "감사 결과는?", "knowledge_bases": ["감사"]})
    assert refused and "민감" in refused and "MCP" in refused
    rows = world.usage_rows(at_least=2)
    assert [r.endpoint for r in rows] == ["mcp.ask", "mcp.ask"] and all(r.user_name == "kim" for r in rows)


def test_work_services_on_the_callers_own_input(world, upstream):
    done, error = call(world, world.key, "use_service", {"service": "summarize", "inputs": {
        "text": "회의 결과: 다음 주까지 예산안을 제출한다. 담당은 기획팀이다."}})
    assert error is None and done["service"] == "summarize" and done["text"]
    assert "예산안을 제출한다" in str(upstream.behaviour.received[-1]["messages"])
    sent = len(upstream.behaviour.received)
    _, refused = call(world, world.key, "use_service", {"service": "summarize", "data_grade": "S",
                                                        "inputs": {"text": SECRET_RULE}})
    assert refused and "민감" in refused
    _, act = call(world, world.key, "use_service", {"service": "act", "inputs": {"request": "예약"}})
    assert act and "summarize" in act
    _, missing = call(world, world.key, "use_service", {"service": "translate", "inputs": {}})
    assert missing and "입력" in missing
    assert len(upstream.behaviour.received) == sent  # nothing refused reached a model


def test_another_agencys_key_sees_its_own_world(world):
    moef = world.new_user_key("lee", Role.USER, "MOEF")
    found, _ = call(world, moef, "search_knowledge", {"query": "숙박비"})
    assert {r["collection"] for r in found["results"]} == {"예산"}


# -- MCP servers as connectors (the act service) ---------------------------------------------------
@pytest.fixture
def petitions():
    from hanchang_devtools.demo_mcp import create_petition_app
    from hanchang_devtools.threaded_server import ThreadedServer

    app, stored, received = create_petition_app()
    server = ThreadedServer(app).start()
    yield server.url + "/mcp", stored, received
    server.stop()


def register_mcp(platform, url, zone="internal", name="민원대장"):
    admin = platform.headers(platform.new_user_key(f"admin-{zone}", Role.AGENCY_ADMIN))
    created = httpx.post(platform.url + "/api/connectors", headers=admin, timeout=30,
                         json={"name": name, "base_url": url, "spec": {"mcp": {"zone": zone}}})
    assert created.status_code == 201, created.text
    return created.json()


def act(platform, request, data_grade="O", connector="민원대장"):
    return httpx.post(platform.url + "/api/services/act", headers=platform.headers(), timeout=60, json={
        "inputs": {"connector": connector, "request": request}, "data_grade": data_grade})


def test_an_mcp_tool_is_proposed_confirmed_and_audited(world, upstream, petitions):
    url, stored, received = petitions
    info = register_mcp(world, url)
    assert any(op.startswith("register_petition: MCP register_petition") for op in info["operations"])
    upstream.behaviour.reply = ('{"operation": "register_petition", "arguments": '
                                '{"title": "보도블록 파손", "district": "종로구"}}')
    proposed = act(world, "종로구 보도블록 파손 민원을 접수해 주세요")
    assert proposed.status_code == 200, proposed.text
    action = proposed.json()["meta"]["action"]
    assert proposed.json()["meta"]["needs_confirmation"] and "MCP 도구 'register_petition'" in proposed.json()["text"]
    assert action["body"] == {"title": "보도블록 파손", "district": "종로구"} and received == []  # nothing sent
    # The model saw the server's tools as operations it may propose.
    assert "register_petition" in str(upstream.behaviour.received[-1]["messages"])
    done = httpx.post(f"{world.url}/api/actions/{action['id']}/confirm", headers=world.headers(), timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "executed"
    assert json.loads(done.json()["result"]["text"])["status"] == "접수"
    assert received == [{"tool": "register_petition", "title": "보도블록 파손", "district": "종로구"}]
    assert stored[-1]["district"] == "종로구"
    rejected = act(world, "한 번 더 접수")
    httpx.post(f"{world.url}/api/actions/{rejected.json()['meta']['action']['id']}/reject", headers=world.headers(),
               timeout=10)
    assert len(received) == 1  # a rejected call is never sent
    with world.db.session() as session:
        from sqlalchemy import select

        from hanchang.store.tables import AuditRecord
        logged = list(session.scalars(select(AuditRecord.action).where(AuditRecord.category == "action")))
    assert logged == ["connectors.register", "actions.propose", "actions.execute", "actions.propose",
                      "actions.reject"]


def test_an_outside_mcp_server_gets_no_personal_data_or_sensitive_data_and_its_answers_are_masked(
        world, upstream, petitions):
    url, _, received = petitions
    register_mcp(world, url, zone="external", name="외부민원")
    upstream.behaviour.reply = ('{"operation": "register_petition", "arguments": '
                                '{"title": "연락처 010-9876-5432 로 회신", "district": "종로구"}}')
    refused = act(world, "민원 접수", connector="외부민원")
    assert refused.status_code == 400 and "전화번호" in refused.json()["error"]["message"]
    upstream.behaviour.reply = '{"operation": "find_petition", "arguments": {"number": "2026-0001"}}'
    sensitive = act(world, "민원 조회", data_grade="S", connector="외부민원")
    assert sensitive.status_code == 400 and "공개" in sensitive.json()["error"]["message"]
    assert received == []
    looked_up = act(world, "2026-0001 민원 상태 조회", connector="외부민원").json()["meta"]["action"]
    done = httpx.post(f"{world.url}/api/actions/{looked_up['id']}/confirm", headers=world.headers(), timeout=30)
    result = done.json()["result"]
    assert "010-2345-6789" not in json.dumps(result, ensure_ascii=False) and result["pii"] == {"PHONE": 2}
    assert "가로등" in result["text"]
    with world.db.session() as session:
        from sqlalchemy import select

        from hanchang.store.tables import AuditRecord
        refusals = list(session.scalars(select(AuditRecord.action).where(AuditRecord.action == "actions.refuse")))
    assert len(refusals) == 2


def test_an_unreachable_mcp_server_is_a_clear_error(world):
    admin = world.headers(world.new_user_key("admin-x", Role.AGENCY_ADMIN))
    refused = httpx.post(world.url + "/api/connectors", headers=admin, timeout=60,
                         json={"name": "없는서버", "base_url": "http://127.0.0.1:9/mcp", "spec": {"mcp": {}}})
    assert refused.status_code == 400 and "MCP 서버" in refused.json()["error"]["message"]
    user = httpx.post(world.url + "/api/connectors", headers=world.headers(), timeout=10,
                      json={"name": "x", "base_url": "http://127.0.0.1:9/mcp", "spec": {"mcp": {}}})
    assert user.status_code == 403


# -- personal data in what leaves through MCP ---------------------------------------------------------
CONTACT = "민원 담당 연락처 010-2345-6789, 신청인 주민등록번호 900101-1234568 확인 후 회신한다."


@pytest.fixture
def contacts(world, tmp_path):
    path = tmp_path / "contact.txt"
    path.write_text(CONTACT, encoding="utf-8")
    ingest_sources(world.db, IndexStore(world.settings.home, world.db), world.ids["open"],
                   [SourceFile(path, "upload:contact.txt", "contact.txt")])
    return world


def test_passages_and_answers_leave_through_mcp_without_personal_data(contacts, upstream):
    found, error = call(contacts, contacts.key, "search_knowledge", {"query": "민원 담당 연락처 회신"})
    text = json.dumps(found, ensure_ascii=False)
    assert error is None and "010-2345-6789" not in text and "900101-1234568" not in text
    assert "[전화번호1]" in text and found["personal_data"] == {"mode": "mask", "found": {"PHONE": 1, "RRN": 1}}
    upstream.behaviour.prefix = "답: 010-2345-6789 로 연락하세요. "
    answered, error = call(contacts, contacts.key, "ask", {"question": "연락처는?", "knowledge_bases": ["여비"]})
    assert error is None and "010-2345-6789" not in json.dumps(answered, ensure_ascii=False)
    done, _ = call(contacts, contacts.key, "use_service", {"service": "summarize", "inputs": {"text": CONTACT}})
    assert "900101-1234568" not in json.dumps(done, ensure_ascii=False)


def test_an_agency_may_block_or_allow_personal_data_over_mcp(contacts):
    contacts.settings.mcp.pii_by_agency = {"MOIS": PiiMode.BLOCK}
    _, refused = call(contacts, contacts.key, "search_knowledge", {"query": "민원 담당 연락처 회신"})
    assert refused and "개인정보" in refused and "010-2345-6789" not in refused
    contacts.settings.mcp.pii_by_agency = {"MOIS": PiiMode.ALLOW}
    found, _ = call(contacts, contacts.key, "search_knowledge", {"query": "민원 담당 연락처 회신"})
    assert "010-2345-6789" in json.dumps(found, ensure_ascii=False)
    assert found["personal_data"] == {"mode": "allow", "found": {"PHONE": 1, "RRN": 1}}


# -- what an MCP client is told about the tools and the credentials ------------------------------------
def test_tools_describe_every_argument_refuse_unknown_ones_and_take_both_names(world, upstream):
    async def work(session):
        return {t.name: t.input_schema for t in (await session.list_tools()).tools}
    schemas = use_mcp(world, world.key, work)
    for name, schema in schemas.items():
        assert schema.get("additionalProperties") is False, name
        assert all(prop.get("description") for prop in schema.get("properties", {}).values()), name
    assert {"knowledge_bases", "collections"} <= set(schemas["ask"]["properties"])
    # /v1's name grounds the answer as MCP's does; a misnamed argument is refused, not ignored.
    answered, error = call(world, world.key, "ask", {"question": "숙박비 한도는?", "collections": ["여비"]})
    assert error is None and answered["citations"] and "칠만 원" in str(upstream.behaviour.received[-1]["messages"])
    _, refused = call(world, world.key, "ask", {"question": "숙박비 한도는?", "knowledge_base": ["여비"]})
    assert refused and "knowledge_base" in refused


def test_the_resource_metadata_says_how_to_authenticate(world):
    refused = httpx.post(world.url + "/mcp", json={}, timeout=10, headers={"accept": "application/json"})
    challenge = refused.headers["www-authenticate"]
    metadata_url = challenge.split('resource_metadata="')[1].rstrip('"')
    assert metadata_url == world.url + "/.well-known/oauth-protected-resource"
    metadata = httpx.get(metadata_url, timeout=10).json()
    assert metadata["resource"] == world.url + "/mcp" and metadata["bearer_methods_supported"] == ["header"]
    assert httpx.get(world.url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json() == metadata
