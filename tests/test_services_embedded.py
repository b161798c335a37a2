"""Every work service end to end over HTTP with the embedded model (Qwen2.5-Coder-0.5B in llama.cpp).

A 0.5B model writes weak prose, so these tests check what must hold whatever it writes: each
service answers, grounded services cite the sample corpus, plans come back in the shape the
JSON schema forces (llama.cpp grammar), figures equal pandas' own, and `act` sends nothing
until confirmed.
"""

from __future__ import annotations

import io

import httpx
import pandas as pd
import pytest

from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.operations import ingest_sources, sample_sources
from hanchang.knowledge.parsers import parse
from hanchang.store import accounts

pytest.importorskip("llama_cpp", reason="install the 'local' extra to run the embedded model")
pytestmark = pytest.mark.slow

BUDGET = "부서,분기,예산\n정보화담당관,1,120\n정보화담당관,2,80\n민원실,1,50\n민원실,2,70\n감사실,1,30\n"


@pytest.fixture
def local(platform_factory, model_path):
    platform = platform_factory({"models": [
        {"name": "local", "backend": "llamacpp", "path": str(model_path), "zone": "internal",
         "max_grade": "C", "context_window": 4096, "threads": 2}]})
    with platform.db.session() as session:
        collection = kc.create(session, "MOIS", "sample").id
        accounts.create_user(session, "MOIS", "admin-local", Role.AGENCY_ADMIN)
        platform.admin_key = accounts.create_key(session, "MOIS", "admin-local").secret
    ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), collection, sample_sources())
    platform.collection = collection
    return platform


def run(platform, service, inputs, grade="O"):
    response = httpx.post(f"{platform.url}/api/services/{service}", headers=platform.headers(), timeout=600,
                          json={"inputs": inputs, "model": "local", "data_grade": grade})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"].strip(), f"{service} answered nothing"
    return body


def test_each_service_with_the_embedded_model(local, booking, tmp_path):
    qa = run(local, "qa", {"question": "자료는 어떤 등급으로 분류하나요?", "collections": [local.collection]})
    assert qa["citations"] and all(c["source"].endswith(".txt") for c in qa["citations"])

    minutes = "김 과장: 내년 예산을 10% 늘립시다. 이 주무관: 다음 주까지 검토하겠습니다. 결정: 예산 증액안을 검토한다."
    summary = run(local, "summarize", {"text": minutes, "style": "minutes"})
    assert summary["meta"]["pieces"] == 1

    draft = run(local, "draft", {"template": "report", "request": "AI 공통기반 도입 계획 보고서를 짧게"})
    exported = httpx.post(local.url + "/api/services/draft/export", headers=local.headers(), timeout=60,
                          json={"title": draft["meta"]["title"], "text": draft["text"], "format": "hwpx"})
    path = tmp_path / "draft.hwpx"
    path.write_bytes(exported.content)
    assert parse(path).blocks[0].text == "업무계획/보고서"

    translated = run(local, "translate", {"text": "회의는 내일 오전 10시에 열립니다.", "target": "en"})
    assert any("a" <= ch.lower() <= "z" for ch in translated["text"])

    counsel = run(local, "counsel", {"question": "공공기관이 민감 자료를 외부 AI에 넣어도 되나요?",
                                     "collections": [local.collection]})
    assert counsel["citations"] and counsel["meta"]["sent_to_citizen"] is False

    analysis = run(local, "analyze", {"csv": BUDGET, "question": "부서별 예산 합계는?"})
    plan = analysis["meta"]["plan"]  # the grammar forces a plan over the table's own columns
    frame = pd.read_csv(io.StringIO(BUDGET))
    assert plan["operation"] in ("sum", "mean", "count", "max", "min")
    assert {plan["column"], plan["group_by"]} <= {None, "부서", "분기", "예산"}
    data = frame
    for column, value in (plan["filter"] or {}).items():
        data = data[data[column].astype(str) == str(value)]
    if "table" in analysis["meta"]:  # whatever plan the model chose, the figures are pandas' own
        grouped = data.groupby(plan["group_by"])
        expected = grouped[plan["column"]].agg(plan["operation"]) if plan["column"] else grouped.size()
        assert {r["group"]: r["value"] for r in analysis["meta"]["table"]} == \
            {str(k): float(v) if float(v) % 1 else int(v) for k, v in expected.items()}
        assert analysis["meta"]["chart_svg"].startswith("<svg")
    else:
        expected = data[plan["column"]].agg(plan["operation"]) if plan["column"] else len(data)
        assert analysis["meta"]["value"] == pytest.approx(float(expected), abs=1e-4)

    server, spec = booking
    created = httpx.post(local.url + "/api/connectors", headers=local.headers(local.admin_key), timeout=10,
                         json={"name": "회의실", "base_url": server.url, "spec": spec})
    assert created.status_code == 201, created.text
    proposed = run(local, "act", {"connector": "회의실",
                                  "request": "2026-12-01 10:00부터 11:00까지 A101 회의실에 '예산 회의'를 예약해 줘"})
    action = proposed["meta"]["action"]
    assert action["operation"] in ("list_rooms", "list_bookings", "create_booking")
    if action["status"] == "pending":  # nothing went out; the user decides
        assert httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json() == []
        decided = httpx.post(f"{local.url}/api/actions/{action['id']}/reject", headers=local.headers(), timeout=10)
        assert decided.json()["status"] == "rejected"

