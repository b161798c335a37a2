"""The leak matrix: every path that reaches a model × how the data became 민감 (declared, grounded
on an S collection, attached, earlier in the conversation, uploaded) × the external zone —
asserted on what the recording external upstream received. Nothing marked S ever arrives there,
whether the platform refuses (reroute off) or answers inside (reroute on)."""

from __future__ import annotations

import base64

import httpx
import pytest

from conftest import start_upstream
from hanchang.core.grades import Grade
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_sources
from hanchang.store import accounts
from test_web_sessions import add_user, sign_in

MARKER = "청렴감찰비밀표지"  # appears only in S material
S_TEXT = f"{MARKER}: 감사 결과 예산 전용 3건이 확인되었다. 부서,예산\n감사실,30"


@pytest.fixture(params=[False, True], ids=["refuse", "reroute"])
def world(request, platform_factory, tmp_path):
    internal, external = start_upstream(prefix="내부: "), start_upstream(prefix="외부: ")
    platform = platform_factory({
        "models": [
            {"name": "inside", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "C", "max_retries": 0},
            {"name": "outside", "backend": "openai", "base_url": external.base_url, "zone": "external",
             "max_grade": "O", "max_retries": 0, "fallbacks": []},
            {"name": "outside-embed", "backend": "openai", "base_url": external.base_url, "zone": "external",
             "max_grade": "O", "kind": "embedding", "max_retries": 0},
        ],
        "policy": {"reroute": request.param, "preferred_internal": ["inside"]},
        "knowledge": {"embedding_model": "outside-embed"},
    })
    document = tmp_path / "감사.txt"
    document.write_text(S_TEXT, encoding="utf-8")
    with platform.db.session() as session:
        secret = kc.create(session, "MOIS", "감사", grade=Grade.SENSITIVE).id
        open_collection = kc.create(session, "MOIS", "공개", grade=Grade.OPEN).id
        accounts.create_user(session, "MOIS", "admin", Role.AGENCY_ADMIN)
        platform.admin_key = accounts.create_key(session, "MOIS", "admin").secret
    ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), secret,
                   [SourceFile(document, "upload:감사.txt", "감사.txt")])
    platform.secret, platform.open, platform.reroute = secret, open_collection, request.param
    platform.internal = internal
    yield platform, external
    internal.server.stop()
    external.server.stop()


def agent_on_s(platform) -> str:
    """An agent of the caller's agency over the S collection, preferring the external model."""
    made = httpx.post(platform.url + "/api/agents", headers=platform.headers(), timeout=30, json={
        "name": f"감사 도우미 {len(platform.internal.behaviour.received)}", "instructions": "감사 결과를 요약하세요.",
        "collections": [platform.secret], "model": "outside", "services": ["qa", "summarize"]})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def s_response(platform) -> str:
    """A stored response answered inside from the S collection (its grade, S, is stored with it)."""
    made = v1(platform, {"model": "inside", "input": ASK[0]["content"], "collections": [platform.secret]},
              "/responses")
    assert made.status_code == 200 and made.json()["hanchang"]["data_grade"] == "S", made.text
    return made.json()["id"]


def mcp_tool(platform, tool: str, arguments: dict):
    """An MCP client's tool call to Hanchang's /mcp, as an httpx-like response (200, or 400 when
    the tool refused)."""
    from test_mcp import call

    result, refused = call(platform, platform.key, tool, arguments)
    return httpx.Response(400 if refused else 200, json={"result": result, "refused": refused})


def v1(platform, body, path="/chat/completions"):
    return httpx.post(platform.v1 + path, headers=platform.headers(), timeout=30, json=body)


def service(platform, name, inputs, grade="O"):
    return httpx.post(f"{platform.url}/api/services/{name}", headers=platform.headers(), timeout=30,
                      json={"inputs": inputs, "model": "outside", "data_grade": grade})


ASK = [{"role": "user", "content": f"{MARKER} 관련 감사 결과는?"}]
CSV_FILE = {"filename": "감사.csv", "content_base64": base64.b64encode("부서,예산\n감사실,30\n".encode()).decode()}

PATHS = {
    "chat declared S": lambda p: v1(p, {"model": "outside", "messages": ASK, "data_grade": "S"}),
    "chat grounded on S": lambda p: v1(p, {"model": "outside", "messages": ASK, "collections": [p.secret]}),
    "chat stream grounded on S": lambda p: v1(p, {"model": "outside", "messages": ASK, "stream": True,
                                                  "collections": [p.secret]}),
    "chat with an S attachment": lambda p: v1(p, {"model": "outside", "messages": ASK, "attachments": [
        {"name": "감사.txt", "content": S_TEXT, "grade": "S"}]}),
    "embeddings declared S": lambda p: v1(p, {"model": "outside-embed", "input": S_TEXT, "data_grade": "S"},
                                          "/embeddings"),
    "qa service on S": lambda p: service(p, "qa", {"question": f"{MARKER} 결과", "collections": [p.secret]}),
    "counsel service on S": lambda p: service(p, "counsel", {"question": f"{MARKER} 민원", "collections": [p.secret]}),
    "summarize declared S": lambda p: service(p, "summarize", {"text": S_TEXT}, "S"),
    "translate declared S": lambda p: service(p, "translate", {"text": S_TEXT, "target": "en"}, "S"),
    "draft declared S": lambda p: service(p, "draft", {"template": "report", "request": S_TEXT}, "S"),
    "analyze declared S": lambda p: service(p, "analyze", {"csv": S_TEXT.split(": ", 1)[1], "question": MARKER}, "S"),
    "analyze file declared S": lambda p: service(p, "analyze", {"file": CSV_FILE, "question": MARKER}, "S"),
    "agent grounded on S": lambda p: v1(p, {"model": agent_on_s(p), "messages": ASK}),
    "agent stream grounded on S": lambda p: v1(p, {"model": agent_on_s(p), "messages": ASK, "stream": True}),
    "qa service as an agent on S": lambda p: httpx.post(
        f"{p.url}/api/services/qa", headers=p.headers(), timeout=30,
        json={"inputs": {"question": f"{MARKER} 결과"}, "agent": agent_on_s(p)}),
    "legacy completion declared S": lambda p: v1(p, {"model": "outside", "prompt": ASK[0]["content"],
                                                     "data_grade": "S"}, "/completions"),
    "legacy completion stream grounded on S": lambda p: v1(p, {"model": "outside", "prompt": ASK[0]["content"],
                                                               "stream": True, "collections": [p.secret]},
                                                           "/completions"),
    "responses grounded on S": lambda p: v1(p, {"model": "outside", "input": ASK[0]["content"],
                                                "collections": [p.secret]}, "/responses"),
    "responses stream with S input items": lambda p: v1(p, {"model": "outside", "stream": True, "data_grade": "S",
                                                            "input": [{"role": "user", "content": [
                                                                {"type": "input_text", "text": S_TEXT}]}]},
                                                        "/responses"),
    "responses continuing an S response": lambda p: v1(p, {"model": "outside", "input": "이어서 요약해 주세요",
                                                           "previous_response_id": s_response(p)}, "/responses"),
    "MCP ask grounded on S, outside model": lambda p: mcp_tool(p, "ask", {
        "question": ASK[0]["content"], "knowledge_bases": [str(p.secret)], "model": "outside"}),
    "MCP ask grounded on S, default model": lambda p: mcp_tool(p, "ask", {
        "question": ASK[0]["content"], "knowledge_bases": [str(p.secret)]}),
    "MCP service declared S": lambda p: mcp_tool(p, "use_service", {
        "service": "summarize", "inputs": {"text": S_TEXT}, "data_grade": "S", "model": "outside"}),
    "upload labelled O into S (embedding)": lambda p: httpx.post(
        f"{p.url}/api/collections/{p.secret}/documents", headers=p.headers(p.admin_key), timeout=30,
        data={"grade": "O"}, files=[("files", ("또.txt", S_TEXT.encode()))]),
    "search an S collection (query embedding)": lambda p: httpx.get(
        f"{p.url}/api/search", headers=p.headers(), timeout=30, params={"q": MARKER, "collection": p.secret}),
}


# Paths answered by a model inside when reroute is on (MCP `use_service` above O is refused before any model).
ANSWERED_INSIDE = {name for name in PATHS if not name.startswith(("embeddings", "upload", "search", "MCP service"))}


@pytest.mark.parametrize("path", list(PATHS))
def test_nothing_marked_s_reaches_the_external_zone(world, path):
    platform, external = world
    response = PATHS[path](platform)
    assert response.status_code < 500, response.text
    received = str(external.behaviour.received)
    assert MARKER not in received and "예산 전용" not in received, f"{path}: leaked {received[:300]}"
    if platform.reroute and path in ANSWERED_INSIDE:  # not vacuous: the request did reach a model, inside
        assert MARKER in str(platform.internal.behaviour.received), response.text


def test_the_window_never_carries_s_history_outside(world):
    platform, external = world
    add_user(platform, "hong")
    client, csrf = sign_in(platform, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    for body in ({"content": "감사 결과?", "model": "inside", "collections": [platform.secret]},
                 {"content": "이어서 요약해줘", "model": "outside"},
                 {"content": "", "model": "outside", "regenerate": True}):
        client.post(f"/api/conversations/{conversation}/messages", headers={"X-CSRF-Token": csrf}, json=body)
    assert MARKER not in str(external.behaviour.received)
