"""Agents and the common asset library: an agent used like a model (the `openai` SDK against a
real Hanchang and a recording upstream), tenant and grade safety across agencies, publishing
checks, review, versions, forks that survive withdrawal, import/export files, usage figures."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
import yaml
from sqlalchemy import select

from conftest import default_models
from hanchang.core.grades import Grade
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_sources
from hanchang.store import accounts
from hanchang.store.tables import Agent, AuditRecord, UsageRecord

A_MARKER = "행안부내부규정표지"  # only in agency A's own (non-common) collection
B_MARKER = "기재부예산지침표지"  # only in agency B's collection
COMMON_MARKER = "공통복무규정표지"  # in a common collection every agency reads
S_MARKER = "민감감사자료표지"  # in A's sensitive collection


def ingest(platform, tmp_path, collection_id: int, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), collection_id,
                   [SourceFile(path, f"upload:{name}", name)])


@pytest.fixture
def world(platform_factory, upstream, tmp_path):
    """Two agencies: MOIS (A) with its own, a sensitive and a common collection; MOEF (B) with its own."""
    platform = platform_factory({"models": default_models(upstream.base_url)})
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
        own = kc.create(session, "MOIS", "내부규정").id
        sensitive = kc.create(session, "MOIS", "감사", grade=Grade.SENSITIVE).id
        common = kc.create(session, "MOIS", "복무", is_common=True).id
        theirs = kc.create(session, "MOEF", "예산지침").id
    ingest(platform, tmp_path, own, "규정.txt", f"{A_MARKER}: 출장 여비는 사흘 안에 정산한다. 출장 정산 기한 규정.")
    ingest(platform, tmp_path, sensitive, "감사.txt", f"{S_MARKER}: 출장 정산 감사 결과 위반 3건.")
    ingest(platform, tmp_path, common, "복무.txt", f"{COMMON_MARKER}: 출장 복무 규정은 공통으로 적용한다.")
    ingest(platform, tmp_path, theirs, "지침.txt", f"{B_MARKER}: 출장 정산은 기재부 예산지침을 따른다.")
    platform.a_user = platform.new_user_key("lee", Role.USER)
    platform.a_admin = platform.new_user_key("boss", Role.AGENCY_ADMIN)
    platform.b_user = platform.new_user_key("park", Role.USER, agency="MOEF")
    platform.b_admin = platform.new_user_key("chief", Role.AGENCY_ADMIN, agency="MOEF")
    platform.root = platform.new_user_key("root", Role.PLATFORM_ADMIN)
    platform.auditor = platform.new_user_key("audit", Role.AUDITOR)
    platform.ids = {"own": own, "sensitive": sensitive, "common": common, "theirs": theirs}
    return platform, upstream


def call(platform, method, path, key, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(key), timeout=30, **kwargs)


def make_agent(platform, key, **fields):
    body = {"name": "출장 도우미", "instructions": "출장 규정에 따라 짧게 답하세요.", "examples": ["출장 정산 기한은?"],
            **fields}
    response = call(platform, "POST", "/api/agents", key, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def publish(platform, key, agent, **fields):
    return call(platform, "POST", "/api/library", key, json={"kind": "agent", "ref": str(agent["number"]), **fields})


def sent_text(upstream, since: int = 0) -> str:
    return json.dumps(upstream.behaviour.received[since:], ensure_ascii=False)


def test_an_agent_is_used_like_a_model_through_the_openai_sdk(world):
    platform, upstream = world
    agent = make_agent(platform, platform.a_user, collections=[platform.ids["own"], platform.ids["common"]])
    client = openai.OpenAI(base_url=platform.v1, api_key=platform.a_user, max_retries=0)
    listed = {m.id: m for m in client.models.list().data}
    assert agent["id"] in listed and listed[agent["id"]].model_extra["kind"] == "agent"

    before = len(upstream.behaviour.received)
    question = [{"role": "user", "content": "출장 정산 기한은?"}]
    result = client.chat.completions.create(model=agent["id"], messages=question)
    received = upstream.behaviour.received[before:]
    assert len(received) == 1
    messages = received[0]["messages"]
    assert messages[0]["role"] == "system" and "출장 규정에 따라 짧게 답하세요." in messages[0]["content"]
    assert A_MARKER in sent_text(upstream, before) and COMMON_MARKER in sent_text(upstream, before)
    assert received[0]["model"] != agent["id"]  # the upstream gets a real model name
    extra = result.model_extra
    assert extra["hanchang"]["agent"] == {"id": agent["id"], "name": "출장 도우미", "shared": False,
                                          "collections_skipped": 0}
    assert {c["collection"] for c in extra["citations"]} >= {"내부규정"}

    stream = client.chat.completions.create(model=agent["id"], stream=True,
                                            messages=[{"role": "user", "content": "출장 정산 기한은?"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    rows = platform.usage_rows(at_least=2)
    assert [r.agent_id for r in rows[-2:]] == [agent["number"]] * 2 and all(r.grounded for r in rows[-2:])

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="agent:999999", messages=[{"role": "user", "content": "?"}])


def test_a_shared_agent_never_reaches_the_authors_collections(world):
    platform, upstream = world
    agent = make_agent(platform, platform.a_user, collections=[platform.ids["own"], platform.ids["common"]])
    # Unpublished: another agency does not learn it exists, and cannot change it.
    body = {"model": agent["id"], "messages": [{"role": "user", "content": "출장 정산 기한은?"}]}
    assert call(platform, "POST", "/v1/chat/completions", platform.b_user, json=body).status_code == 404
    assert call(platform, "PUT", f"/api/agents/{agent['number']}", platform.b_admin,
                json={"name": "x", "instructions": "y"}).status_code == 404
    published = call(platform, "POST", "/api/library", platform.a_user,
                     json={"kind": "agent", "ref": str(agent["number"]), "tags": ["출장"]})
    assert published.status_code == 201, published.text

    before = len(upstream.behaviour.received)
    response = call(platform, "POST", "/v1/chat/completions", platform.b_user,
                    json={**body, "collections": [platform.ids["theirs"]]})
    assert response.status_code == 200, response.text
    sent = sent_text(upstream, before)
    assert A_MARKER not in sent  # A's own collection: not readable by B, so not used
    assert COMMON_MARKER in sent and B_MARKER in sent  # common one, and B's own chosen one
    assert response.json()["hanchang"]["agent"]["collections_skipped"] == 1
    # B cannot widen access by naming A's collection itself either.
    refused = call(platform, "POST", "/v1/chat/completions", platform.b_user,
                   json={**body, "collections": [platform.ids["own"]]})
    assert refused.status_code == 404 and A_MARKER not in sent_text(upstream, before)


def test_publishing_refuses_personal_data_and_non_public_collections(world):
    platform, _ = world
    sensitive = make_agent(platform, platform.a_user, name="감사 도우미", collections=[platform.ids["sensitive"]])
    refused = publish(platform, platform.a_user, sensitive)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "publish_refused"
    assert "민감(S)" in refused.json()["error"]["message"] and "감사" in refused.json()["error"]["message"]

    personal = make_agent(platform, platform.a_user, name="민원 도우미",
                          instructions="담당자 김민수(010-2345-6789)에게 넘기세요.")
    refused = publish(platform, platform.a_user, personal)
    assert refused.status_code == 422 and "개인정보" in refused.json()["error"]["message"]
    assert "instructions" in refused.json()["error"]["message"]
    assert call(platform, "GET", "/api/library", platform.b_user).json()["data"] == []
    # The description typed at publishing is checked too.
    clean = make_agent(platform, platform.a_user, name="깨끗한 도우미")
    refused = call(platform, "POST", "/api/library", platform.a_user,
                   json={"kind": "agent", "ref": str(clean["number"]), "description": "문의 010-2345-6789"})
    assert refused.status_code == 422
    # Another user of the same agency (not the author, not an admin) may not publish it; an auditor builds nothing.
    other = platform.new_user_key("choi", Role.USER)
    assert publish(platform, other, clean).status_code == 403
    assert call(platform, "POST", "/api/agents", platform.auditor,
                json={"name": "a", "instructions": "b"}).status_code == 403


def test_fork_versions_and_withdrawal_never_break_a_copy(world):
    platform, _upstream = world
    agent = make_agent(platform, platform.a_user, collections=[platform.ids["own"], platform.ids["common"]])
    asset = call(platform, "POST", "/api/library", platform.a_user,
                 json={"kind": "agent", "ref": str(agent["number"]), "note": "첫 판"}).json()
    assert asset["version"] == 1 and asset["use_as"] == agent["id"]

    forked = call(platform, "POST", f"/api/library/{asset['id']}/fork", platform.b_user, json={})
    assert forked.status_code == 201, forked.text
    copy = forked.json()
    assert copy["kind"] == "agent" and copy["collections_skipped"] == ["내부규정"]
    mine = call(platform, "GET", f"/api/agents/{copy['ref'].split(':')[1]}", platform.b_user).json()
    assert mine["collections"] == [platform.ids["common"]] and mine["forked_from"] == asset["id"]

    # A new version: the library shows v2, the fork stays as it was copied.
    updated = call(platform, "PUT", f"/api/agents/{agent['number']}", platform.a_user,
                   json={"name": "출장 도우미", "instructions": "두 번째 지침입니다.",
                         "collections": [platform.ids["own"]]})
    assert updated.status_code == 200
    v2 = publish(platform, platform.a_user, agent).json()
    assert v2["version"] == 2
    preview = call(platform, "GET", f"/api/library/{asset['id']}", platform.b_user).json()
    assert preview["document"]["content"]["instructions"] == "두 번째 지침입니다."
    assert [v["version"] for v in preview["versions"]] == [2, 1]
    assert preview["stats"]["forks"] == 1 and preview["stats"]["agencies"] == ["MOEF"]

    withdrawn = call(platform, "POST", f"/api/library/{asset['id']}/withdraw", platform.a_user)
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert call(platform, "GET", "/api/library", platform.b_user).json()["data"] == []
    ask = {"messages": [{"role": "user", "content": "출장 정산 기한은?"}]}
    assert call(platform, "POST", "/v1/chat/completions", platform.b_user,
                json={**ask, "model": agent["id"]}).status_code == 404
    still = call(platform, "POST", "/v1/chat/completions", platform.b_user, json={**ask, "model": copy["ref"]})
    assert still.status_code == 200, still.text
    with platform.db.session() as session:
        actions = [r.action for r in session.scalars(select(AuditRecord).where(AuditRecord.category == "admin"))]
    assert {"agents.create", "assets.publish", "assets.fork", "assets.withdraw"} <= set(actions)


def test_review_holds_a_version_until_a_platform_admin_approves(platform_factory, upstream):
    platform = platform_factory({"models": default_models(upstream.base_url), "library": {"review_required": True}})
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
    author = platform.new_user_key("lee", Role.USER)
    other = platform.new_user_key("park", Role.USER, agency="MOEF")
    root = platform.new_user_key("root", Role.PLATFORM_ADMIN)
    agent = make_agent(platform, author)
    asset = call(platform, "POST", "/api/library", author, json={"kind": "agent", "ref": str(agent["number"])}).json()
    assert asset["state"] == "pending" and asset["version"] is None
    assert call(platform, "GET", "/api/library", other).json()["data"] == []
    assert call(platform, "GET", "/api/library?pending=true", other).status_code == 403
    queue = call(platform, "GET", "/api/library?pending=true", root).json()["data"]
    assert [a["id"] for a in queue] == [asset["id"]]
    assert call(platform, "POST", f"/api/library/{asset['id']}/review", author,
                json={"version": 1, "approve": True}).status_code == 403
    approved = call(platform, "POST", f"/api/library/{asset['id']}/review", root, json={"version": 1, "approve": True})
    assert approved.status_code == 200 and approved.json()["version"] == 1
    assert [a["id"] for a in call(platform, "GET", "/api/library", other).json()["data"]] == [asset["id"]]
    # A second version waits while the first stays visible.
    call(platform, "POST", "/api/library", author, json={"kind": "agent", "ref": str(agent["number"])})
    seen = call(platform, "GET", "/api/library", other).json()["data"][0]
    assert seen["version"] == 1 and seen["latest_version"] == 2 and seen["review_pending"]


def test_concurrent_publications_get_distinct_versions(world):
    platform, _ = world
    agent = make_agent(platform, platform.a_user)
    results: list[httpx.Response] = []

    def publish():
        results.append(call(platform, "POST", "/api/library", platform.a_user,
                            json={"kind": "agent", "ref": str(agent["number"])}))
    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    preview = call(platform, "GET", f"/api/library/{results[0].json()['id']}", platform.a_user).json()
    assert sorted(v["version"] for v in preview["versions"]) == [1, 2, 3, 4]


def test_export_and_import_files(world):
    platform, _upstream = world
    agent = make_agent(platform, platform.a_user, collections=[platform.ids["own"], platform.ids["common"]],
                       services=["summarize"])
    exported = call(platform, "GET", f"/api/assets/export?kind=agent&ref={agent['number']}", platform.a_user)
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    document = yaml.safe_load(exported.text)
    assert document["format"] == "hanchang.asset/v1" and document["kind"] == "agent"
    assert [c["name"] for c in document["content"]["collections"]] == ["내부규정", "복무"]
    # B imports it: the common collection comes along, A's own does not.
    imported = call(platform, "POST", "/api/assets/import", platform.b_user, content=exported.content)
    assert imported.status_code == 201, imported.text
    assert imported.json()["collections_skipped"] == ["내부규정"]
    # A JSON export of a prompt round-trips too.
    prompt = call(platform, "POST", "/api/prompts", platform.a_user,
                  json={"title": "공문 요약", "text": "세 줄로 요약하세요."}).json()
    as_json = call(platform, "GET", f"/api/assets/export?kind=prompt&ref={prompt['id']}&format=json", platform.a_user)
    assert call(platform, "POST", "/api/assets/import", platform.b_user, content=as_json.content).status_code == 201
    assert [p["title"] for p in call(platform, "GET", "/api/prompts", platform.b_user).json()["data"]] == ["공문 요약"]
    # A template (admins manage templates) exports, publishes and forks.
    saved = call(platform, "PUT", "/api/services/draft/templates/weekly", platform.a_admin,
                 json={"name_ko": "주간보고", "sections": ["실적", "계획"], "instructions": "개조식으로 쓰세요."})
    assert saved.status_code == 200
    asset = call(platform, "POST", "/api/library", platform.a_admin, json={"kind": "template", "ref": "weekly"}).json()
    assert call(platform, "POST", f"/api/library/{asset['id']}/fork", platform.b_user, json={}).status_code == 403
    assert call(platform, "POST", f"/api/library/{asset['id']}/fork", platform.b_admin, json={}).status_code == 201
    keys = [t["id"] for t in call(platform, "GET", "/api/services/draft/templates", platform.b_user).json()["data"]]
    assert "weekly" in keys

    with platform.db.session() as session:
        before = session.query(Agent).count()
    for bad, words in ((b"not: [valid", "YAML"), (b"format: other/v9\nkind: agent", "format"),
                       (b"format: hanchang.asset/v1\nkind: robot\nname: x\ncontent: {}", "robot"),
                       (b"format: hanchang.asset/v1\nkind: agent\nname: x\ncontent: {instructions: ''}",
                        "instructions"),
                       (b"\xff\xfe", "UTF-8")):
        response = call(platform, "POST", "/api/assets/import", platform.b_user, content=bad)
        assert response.status_code == 422, (bad, response.text)
        assert words in response.json()["error"]["message"], response.text
    with platform.db.session() as session:
        assert session.query(Agent).count() == before  # a bad file changes nothing


def test_services_run_as_an_agent_only_with_what_it_lists(world):
    platform, upstream = world
    agent = make_agent(platform, platform.a_user, services=["summarize", "qa"], collections=[platform.ids["own"]])
    run = {"inputs": {"text": "긴 보고서 내용입니다. " * 5}, "agent": agent["id"]}
    response = call(platform, "POST", "/api/services/summarize", platform.a_user, json=run)
    assert response.status_code == 200, response.text
    as_model = call(platform, "POST", "/api/services/summarize", platform.a_user,
                    json={"inputs": run["inputs"], "model": agent["id"]})  # picked where a model goes
    assert as_model.status_code == 200, as_model.text
    refused = call(platform, "POST", "/api/services/translate", platform.a_user,
                   json={"inputs": {"text": "안녕", "target": "en"}, "agent": agent["id"]})
    assert refused.status_code == 422 and "translate" in refused.json()["error"]["message"]
    before = len(upstream.behaviour.received)
    qa = call(platform, "POST", "/api/services/qa", platform.a_user,
              json={"inputs": {"question": "출장 정산 기한은?"}, "agent": agent["id"]})
    assert qa.status_code == 200, qa.text
    assert A_MARKER in sent_text(upstream, before) and qa.json()["citations"]
    rows = platform.usage_rows(at_least=3)
    assert {r.endpoint for r in rows if r.agent_id == agent["number"]} >= {"service.summarize", "service.qa"}


def test_library_figures_count_calls_agencies_and_ratings(world):
    from test_web_sessions import PASSWORD

    platform, _ = world
    agent = make_agent(platform, platform.a_user)
    asset = publish(platform, platform.a_user, agent).json()
    ask = {"model": agent["id"], "messages": [{"role": "user", "content": "출장?"}]}
    for key in (platform.a_user, platform.b_user, platform.b_user):
        assert call(platform, "POST", "/v1/chat/completions", key, json=ask).status_code == 200
    # A window answer by the agent, rated 👍.
    with platform.db.session() as session:
        accounts.create_user(session, "MOEF", "han", Role.USER, PASSWORD)
    client = httpx.Client(base_url=platform.url, timeout=30)
    assert client.post("/auth/login", data={"agency": "MOEF", "user": "han", "password": PASSWORD}).status_code == 303
    import re

    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    headers = {"X-CSRF-Token": csrf}
    conversation = client.post("/api/conversations", headers=headers).json()["id"]
    stream = client.post(f"/api/conversations/{conversation}/messages", headers=headers,
                         json={"content": "출장 정산?", "model": agent["id"], "data_grade": "O", "collections": []})
    done = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
    message_id = [d for d in done if "message_id" in d][-1]["message_id"]
    rated = client.post(f"/api/messages/{message_id}/feedback", headers=headers, json={"rating": 1})
    assert rated.status_code in (200, 201, 204)
    platform.usage_rows(at_least=4)
    figures = call(platform, "GET", f"/api/library/{asset['id']}", platform.b_user).json()["stats"]
    assert figures["calls"] == 4 and figures["agencies"] == ["MOEF", "MOIS"]
    assert figures["thumbs_up_rate"] == 1.0 and figures["ratings"] == 1
    with platform.db.session() as session:
        assert session.scalar(select(UsageRecord.agent_id).order_by(UsageRecord.id.desc()).limit(1)) == agent["number"]


# -- the adoption checklist (3.3) ----------------------------------------------------------------
def test_the_adoption_checklist_prefills_saves_and_exports(world, tmp_path):
    import io

    from openpyxl import load_workbook

    from hanchang.knowledge.parsers.hwpx import parse_hwpx

    platform, _ = world
    project = "민원 챗봇 2026"
    view = call(platform, "GET", "/api/checklist", platform.a_user, params={"project": project}).json()
    items = {i["id"]: i for i in view["items"]}
    assert view["total"] == len(items) == 61 and [s["id"] for s in view["sections"]] == list("0123456")
    # Pre-filled from the platform's own state, marked as such.
    assert items["1.2"]["auto"] and items["1.2"]["answer"] == "yes"
    assert "민감 1개" in items["1.2"]["evidence"] and "공개 2개" in items["1.2"]["evidence"]
    assert items["3.5.3"]["auto"] and "문서 3건" in items["3.5.3"]["evidence"]
    assert items["5.8"]["auto"] and "7초" in items["5.8"]["evidence"]
    assert items["0.1.1"]["answer"] is None and not view["may_answer"]
    # A user reads it; only the agency's admins answer.
    answer = {"project": project, "answer": "no", "note": "검토 예정", "evidence": "https://wiki.example/ai"}
    assert call(platform, "PUT", "/api/checklist/0.1.1", platform.a_user, json=answer).status_code == 403
    assert call(platform, "PUT", "/api/checklist/0.1.1", platform.a_admin, json=answer).status_code == 200
    override = {"project": project, "answer": "na", "note": "기관 판단"}
    assert call(platform, "PUT", "/api/checklist/1.2", platform.a_admin, json=override).status_code == 200
    bad = call(platform, "PUT", "/api/checklist/9.9", platform.a_admin, json=answer)
    assert bad.status_code == 422 and "9.9" in bad.json()["error"]["message"]
    # Another agency sees its own checklist (nothing of MOIS's answers), and cannot ask for MOIS's.
    theirs = call(platform, "GET", "/api/checklist", platform.b_admin, params={"project": project}).json()
    assert {i["id"]: i for i in theirs["items"]}["0.1.1"]["answer"] is None
    assert call(platform, "GET", "/api/checklist", platform.b_admin,
                params={"project": project, "agency": "MOIS"}).status_code == 403

    view = call(platform, "GET", "/api/checklist", platform.a_admin, params={"project": project}).json()
    items = {i["id"]: i for i in view["items"]}
    assert items["0.1.1"]["answer"] == "no" and items["0.1.1"]["note"] == "검토 예정" and not items["0.1.1"]["auto"]
    assert items["1.2"]["answer"] == "na" and not items["1.2"]["auto"]  # the agency's answer wins
    assert project in view["projects"] and view["may_answer"]

    xlsx = call(platform, "GET", "/api/checklist/export", platform.a_admin, params={"project": project})
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = {row[0]: row for row in sheet.iter_rows(min_row=5, values_only=True)}
    assert "도입 체크리스트" in sheet["A1"].value and project in sheet["A1"].value
    assert rows["0.1.1"][3] == "아니오" and rows["0.1.1"][5] == "https://wiki.example/ai"
    assert rows["5.8"][6] == "자동" and rows["1.2"][3] == "해당 없음"
    hwpx = call(platform, "GET", "/api/checklist/export", platform.a_admin,
                params={"project": project, "format": "hwpx"})
    path = tmp_path / "checklist.hwpx"
    path.write_bytes(hwpx.content)
    text = parse_hwpx(path).text
    assert "범정부 초거대 AI 공통기반 활용" in text and "검토 예정" in text
    with platform.db.session() as session:
        actions = list(session.scalars(select(AuditRecord.action).where(AuditRecord.action == "checklist.answer")))
    assert len(actions) == 2


def test_assets_round_trip_through_the_command_line(world, tmp_path):
    from typer.testing import CliRunner

    from hanchang.cli import app as cli

    platform, _ = world
    agent = make_agent(platform, platform.a_user, collections=[platform.ids["own"], platform.ids["common"]])
    env = {"HANCHANG_DATABASE_URL": str(platform.db.engine.url.render_as_string(hide_password=False)),
           "HANCHANG_HOME": str(platform.settings.home)}
    runner = CliRunner()
    path = tmp_path / "agent.yaml"
    exported = runner.invoke(cli, ["assets", "export", "--agency", "MOIS", "--user", "lee", "--kind", "agent",
                                   "--ref", str(agent["number"]), "-o", str(path)], env=env)
    assert exported.exit_code == 0, exported.output
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert written["content"]["instructions"] == "출장 규정에 따라 짧게 답하세요."
    imported = runner.invoke(cli, ["assets", "import", str(path), "--agency", "MOEF", "--user", "park"], env=env)
    assert imported.exit_code == 0, imported.output
    assert "left out: 내부규정" in imported.output
    names = [a["name"] for a in call(platform, "GET", "/api/agents", platform.b_user).json()["data"] if not a["shared"]]
    assert names == ["출장 도우미"]
    (tmp_path / "bad.yaml").write_text("kind: agent", encoding="utf-8")
    refused = runner.invoke(cli, ["assets", "import", str(tmp_path / "bad.yaml"), "--agency", "MOEF",
                                  "--user", "park"], env=env)
    assert refused.exit_code == 1 and "hanchang.asset/v1" in refused.output


def test_out_of_range_ids_name_nothing(world):
    platform, _ = world
    huge = 2**40
    ask = {"messages": [{"role": "user", "content": "?"}]}
    for model in (f"agent:{huge}", "agent:", "agent:-1", "agent:١٢"):
        response = call(platform, "POST", "/v1/chat/completions", platform.a_user, json={**ask, "model": model})
        assert response.status_code == 404, (model, response.text)
    made = call(platform, "POST", "/api/agents", platform.a_user, json={"name": "x", "instructions": "y",
                                                                       "collections": [huge]})
    assert made.status_code == 404
    for path in (f"/api/assets/export?kind=prompt&ref={huge}", f"/api/assets/export?kind=agent&ref={huge}"):
        assert call(platform, "GET", path, platform.a_user).status_code == 404
    forged = (f"format: hanchang.asset/v1\nkind: agent\nname: 위조\ncontent:\n  instructions: 안내\n"
              f"  collections: [{{id: {huge}, name: 없음, grade: O, common: true}}]\n").encode()
    imported = call(platform, "POST", "/api/assets/import", platform.a_user, content=forged)
    assert imported.status_code == 201 and imported.json()["collections_skipped"] == ["없음"]


def test_a_config_service_is_shared_by_platform_admins_and_forks_into_an_agent(platform_factory, upstream):
    platform = platform_factory({"models": default_models(upstream.base_url), "services": {"custom": [
        {"id": "complaint_polish", "name_ko": "민원 답변 다듬기",
         "instructions": "민원 답변을 정중하게 다듬으세요."}]}})
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
    admin = platform.new_user_key("boss", Role.AGENCY_ADMIN)
    root = platform.new_user_key("root", Role.PLATFORM_ADMIN)
    other = platform.new_user_key("park", Role.USER, agency="MOEF")
    share = {"kind": "service", "ref": "complaint_polish", "tags": ["민원"]}
    assert call(platform, "POST", "/api/library", admin, json=share).status_code == 403
    published = call(platform, "POST", "/api/library", root, json=share)
    assert published.status_code == 201, published.text
    made = call(platform, "POST", f"/api/library/{published.json()['id']}/fork", other, json={}).json()
    assert made["kind"] == "agent" and made["name"] == "민원 답변 다듬기"
    answered = call(platform, "POST", "/v1/chat/completions", other,
                    json={"model": made["ref"], "messages": [{"role": "user", "content": "답변 초안입니다"}]})
    assert answered.status_code == 200
    assert "민원 답변을 정중하게 다듬으세요." in json.dumps(upstream.behaviour.received[-1], ensure_ascii=False)


def test_an_asset_action_is_not_kept_without_its_audit_record(world):
    """Publishing, forking and creating an agent commit together with their audit records."""
    from sqlalchemy import func, text

    from hanchang.store.tables import AssetUse, SharedAssetVersion

    platform, _ = world
    agent = make_agent(platform, platform.a_user)
    asset = publish(platform, platform.a_user, agent).json()
    with platform.db.session() as session:
        last = session.scalar(select(func.max(AuditRecord.id)))
        good_hash = session.scalar(text("SELECT last_hash FROM audit_chain_head WHERE id = 1"))
        agents_before = session.query(Agent).count()
        # The chain head now points one record back: the next append collides with an existing id.
        session.execute(text("UPDATE audit_chain_head SET last_id = :i WHERE id = 1"), {"i": last - 1})
    try:
        assert publish(platform, platform.a_user, agent).status_code == 500
        assert call(platform, "POST", f"/api/library/{asset['id']}/fork", platform.b_user, json={}).status_code == 500
        assert call(platform, "POST", "/api/agents", platform.a_user,
                    json={"name": "새것", "instructions": "지침"}).status_code == 500
        with platform.db.session() as session:
            assert session.query(SharedAssetVersion).count() == 1  # no v2
            assert session.query(AssetUse).count() == 0 and session.query(Agent).count() == agents_before
            assert session.scalar(select(func.max(AuditRecord.id))) == last
    finally:
        with platform.db.session() as session:
            session.execute(text("UPDATE audit_chain_head SET last_id = :i, last_hash = :h WHERE id = 1"),
                            {"i": last, "h": good_hash})
