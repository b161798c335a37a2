"""Work services run through the same gateway as chat: policy, guard and audit included."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from hanchang.knowledge.parsers import BlockKind, parse
from hanchang.store.tables import AuditRecord


@pytest.fixture
def services(platform_factory, upstreams):
    internal, external = upstreams
    return platform_factory({
        "models": [
            {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "C", "context_window": 512},
            {"name": "ext", "backend": "openai", "base_url": external.base_url, "zone": "external",
             "max_grade": "O"},
        ],
        "services": {"glossary": {"MOIS": {"디지털플랫폼정부": "Digital Platform Government"}}},
    })


def run(platform, service, inputs=None, **extra):
    return httpx.post(f"{platform.url}/api/services/{service}", headers=platform.headers(), timeout=60,
                      json={"inputs": inputs, **extra})


def test_services_are_listed_in_korean(services):
    listed = httpx.get(services.url + "/api/services", headers=services.headers()).json()["data"]
    assert {s["id"]: s["name_ko"] for s in listed} == {
        "qa": "질의응답", "summarize": "요약", "draft": "문서 작성", "translate": "번역", "counsel": "상담 지원",
        "analyze": "분석·활용", "act": "서비스 처리"}
    assert all(s["inputs"] for s in listed)


def test_long_text_is_summarised_by_map_reduce(services, upstreams):
    internal, _ = upstreams
    long_text = " ".join(f"제{i}항 회의에서 예산 {i}억 원 집행 계획을 검토하였다." for i in range(200))
    response = run(services, "summarize", {"text": long_text}, model="int")
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["pieces"] > 1
    assert len(internal.behaviour.received) > response.json()["meta"]["pieces"]  # maps, then reduce
    services.usage_rows(at_least=len(internal.behaviour.received))
    with services.db.session() as session:
        actions = set(session.scalars(select(AuditRecord.action).where(AuditRecord.category == "ai")))
    assert actions == {"service.summarize"}


def test_minutes_follow_the_minutes_format(services, upstreams):
    internal, _ = upstreams
    run(services, "summarize", {"text": "김 과장: 예산을 늘립시다. 이 주무관: 다음 주까지 검토하겠습니다.",
                                "style": "minutes"}, model="int")
    system = internal.behaviour.received[-1]["messages"][0]["content"]
    assert "결정 사항" in system and "조치 사항" in system
    nothing = run(services, "summarize", {"style": "minutes"})
    assert nothing.status_code == 400 and "요약할 글을 넣거나 문서 파일" in nothing.json()["error"]["message"]


def test_translation_pins_glossary_terms(services, upstreams):
    internal, _ = upstreams
    response = run(services, "translate", model="int",
                   inputs={"text": "디지털플랫폼정부 위원회 회의", "source": "ko", "target": "en"})
    system = internal.behaviour.received[-1]["messages"][0]["content"]
    assert "디지털플랫폼정부 → Digital Platform Government" in system
    meta = response.json()["meta"]
    assert meta["glossary_applied"] == {"디지털플랫폼정부": "Digital Platform Government"}
    assert meta["glossary_missing"] == ["디지털플랫폼정부"]  # the echo upstream does not translate
    same = run(services, "translate", {"text": "x", "source": "ko", "target": "ko"})
    assert same.status_code == 400 and "같습니다" in same.json()["error"]["message"]


def test_drafts_follow_templates_and_export_to_docx(services, upstreams, tmp_path):
    internal, _ = upstreams
    response = run(services, "draft", {"template": "report", "request": "2025-08-07 시행 AI 공통기반 보고서"},
                   model="int")
    body = response.json()
    system = internal.behaviour.received[-1]["messages"][0]["content"]
    assert all(section in system for section in ("개요", "추진배경", "추진내용", "기대효과"))
    assert "2025. 8. 7." in body["text"] and "2025-08-07" not in body["text"]
    exported = httpx.post(services.url + "/api/services/draft/export", headers=services.headers(), timeout=30,
                          json={"title": "AI 공통기반 보고서",
                                "text": "□ 개요\n○ 목적: 기반 마련\n□ 기대효과\n- 업무 효율"})
    assert exported.status_code == 200
    path = tmp_path / "draft.docx"
    path.write_bytes(exported.content)
    doc = parse(path)
    assert [b.text for b in doc.blocks if b.kind is BlockKind.HEADING] == ["AI 공통기반 보고서", "□ 개요", "□ 기대효과"]
    bad = run(services, "draft", {"template": "poem", "request": "x"})
    assert bad.status_code == 400 and "서식 'poem'이(가) 없습니다" in bad.json()["error"]["message"]


DRAFT_TEXT = "□ 개요\n ○ (목적) 공공부문 AI 활용 기반 마련\n   - 2025. 8. 7. 착수\n□ 기대효과\n업무 시간 단축"


@pytest.mark.parametrize("fmt", ["hwpx", "hwp"])
def test_drafts_export_to_hwpx_and_hwp_that_parse_back(services, tmp_path, fmt):
    exported = httpx.post(services.url + "/api/services/draft/export", headers=services.headers(), timeout=30,
                          json={"title": "AI 공통기반 보고서", "text": DRAFT_TEXT, "format": fmt})
    assert exported.status_code == 200, exported.text
    assert "filename*=UTF-8''AI%20%EA%B3%B5" in exported.headers["content-disposition"]
    path = tmp_path / f"draft.{fmt}"
    path.write_bytes(exported.content)
    doc = parse(path)  # our own HWP/HWPX parsers read what python-hwpx wrote
    lines = [b.text.strip() for b in doc.blocks]
    assert lines == ["AI 공통기반 보고서", "□ 개요", "○ (목적) 공공부문 AI 활용 기반 마련", "- 2025. 8. 7. 착수",
                     "□ 기대효과", "업무 시간 단축"]
    if fmt == "hwpx":  # python-hwpx's schema check of the package (what Hancom Office opens)
        from hwpx import HwpxDocument

        assert HwpxDocument.open(path).validate().issues == ()
    bad = httpx.post(services.url + "/api/services/draft/export", headers=services.headers(),
                     json={"title": "x", "text": "y", "format": "pdf"})
    assert bad.status_code == 400 and "docx, hwpx, hwp" in bad.json()["error"]["message"]


def test_agencies_manage_their_own_templates(services, upstreams):
    internal, _ = upstreams
    url = services.url + "/api/services/draft/templates"
    weekly = {"name_ko": "주간 업무보고", "sections": ["금주 실적", "차주 계획", "건의 사항"],
              "instructions": "각 항목은 ○ 개조식으로 세 줄 이내로 쓰세요.", "example": "○ 금주 실적: 공통기반 점검"}
    from hanchang.core.principal import Role
    from hanchang.store import accounts

    with services.db.session() as session:
        accounts.create_agency(session, "KOSIS", "통계청")
        accounts.create_user(session, "MOIS", "admin-tpl", Role.AGENCY_ADMIN)
        accounts.create_user(session, "KOSIS", "admin-kosis", Role.AGENCY_ADMIN)
        admin = services.headers(accounts.create_key(session, "MOIS", "admin-tpl").secret)
        other_headers = services.headers(accounts.create_key(session, "KOSIS", "admin-kosis").secret)
    user = services.headers()
    denied = httpx.put(url + "/weekly", headers=user, json=weekly)
    assert denied.status_code == 403 and "기관 관리자" in denied.json()["error"]["message"]
    saved = httpx.put(url + "/weekly", headers=admin, json=weekly)
    assert saved.status_code == 200 and saved.json()["source"] == "agency"
    # Every user of the agency sees it beside the built-in ones and drafts with it.
    listed = {t["id"]: t for t in httpx.get(url, headers=user).json()["data"]}
    assert listed["weekly"]["sections"] == weekly["sections"] and listed["report"]["source"] == "builtin"
    response = run(services, "draft", {"template": "weekly", "request": "이번 주 점검 결과"}, model="int")
    assert response.status_code == 200 and response.json()["meta"]["template_source"] == "agency"
    system = internal.behaviour.received[-1]["messages"][0]["content"]
    assert "차주 계획" in system and "세 줄 이내" in system and "공통기반 점검" in system
    # Another agency sees only the built-in ones, and cannot use or delete MOIS's.
    assert "weekly" not in {t["id"] for t in httpx.get(url, headers=other_headers).json()["data"]}
    assert httpx.delete(url + "/weekly", headers=other_headers).status_code == 404
    # An agency may replace a built-in for itself; deleting restores the built-in.
    mine = {**weekly, "name_ko": "우리 기관 보도자료"}
    assert httpx.put(url + "/press_release", headers=admin, json=mine).status_code == 200
    names = {t["id"]: t["name_ko"] for t in httpx.get(url, headers=admin).json()["data"]}
    assert names["press_release"] == "우리 기관 보도자료"
    assert httpx.delete(url + "/press_release", headers=admin).status_code == 204
    names = {t["id"]: t["name_ko"] for t in httpx.get(url, headers=admin).json()["data"]}
    assert names["press_release"] == "보도자료"
    bad_key = httpx.put(url + "/Weekly%20Report", headers=admin, json=weekly)
    assert bad_key.status_code == 400 and "서식 키" in bad_key.json()["error"]["message"]
    empty = httpx.put(url + "/empty", headers=admin, json={**weekly, "sections": ["  "]})
    assert empty.status_code == 400 and "절(sections)" in empty.json()["error"]["message"]
    with services.db.session() as session:
        actions = list(session.scalars(select(AuditRecord.action).where(AuditRecord.action.like("templates.%"))))
    assert actions == ["templates.save", "templates.save", "templates.delete"]


def test_services_have_no_side_door(services, upstreams):
    _, external = upstreams
    refused = run(services, "summarize", {"text": "인사 평가 결과 요약"}, model="ext", data_grade="S")
    assert refused.status_code == 403 and external.behaviour.received == []
    pseudo = run(services, "translate", {"text": "연락처 010-2345-6789로 회신", "target": "en"}, model="ext")
    assert pseudo.status_code == 200
    assert "010-2345-6789" not in json.dumps(external.behaviour.received, ensure_ascii=False)


def test_counsel_drafts_for_the_counsellor_and_flags_decisions(services, upstreams):
    from hanchang.knowledge import collections as kc
    from hanchang.knowledge.index_store import IndexStore
    from hanchang.knowledge.ingest import SourceFile
    from hanchang.knowledge.operations import ingest_sources

    internal, _ = upstreams
    rule = services.settings.home / "환급규정.txt"
    rule.parent.mkdir(parents=True, exist_ok=True)
    rule.write_text("제4조(환급) 과오납 수수료는 신청일부터 14일 안에 환급한다.", encoding="utf-8")
    with services.db.session() as session:
        cid = kc.create(session, "MOIS", "민원규정").id
    ingest_sources(services.db, IndexStore(services.settings.home, services.db), cid,
                   [SourceFile(rule, "upload:환급규정.txt", "환급규정.txt")])
    question = "수수료를 두 번 냈는데 환급받을 수 있나요?"
    response = run(services, "counsel", {"question": question, "collections": [cid]}, model="int")
    body = response.json()
    assert body["meta"]["sent_to_citizen"] is False and body["citations"][0]["source"] == "환급규정.txt"
    assert "금전 판단 필요" in body["meta"]["needs_human_decision"]
    prompt = "\n".join(m["content"] for m in internal.behaviour.received[-1]["messages"] if m["role"] == "system")
    assert "상담원" in prompt and "제4조(환급)" in prompt


BUDGET_CSV = "부서,분기,예산\n정보화담당관,1,120\n정보화담당관,2,80\n민원실,1,50\n민원실,2,70\n감사실,1,30\n"


def test_analyze_computes_figures_in_code_and_draws_a_chart(services, upstreams):
    internal, _ = upstreams
    internal.behaviour.reply = '계획: {"operation": "sum", "column": "예산", "group_by": "부서", "filter": null}'
    response = run(services, "analyze", {"csv": BUDGET_CSV, "question": "부서별 예산 합계는?"}, model="int")
    assert response.status_code == 200, response.text
    meta = response.json()["meta"]
    assert meta["table"] == [{"group": "정보화담당관", "value": 200}, {"group": "민원실", "value": 120},
                             {"group": "감사실", "value": 30}]
    assert meta["chart_svg"].startswith("<svg") and "정보화담당관" in meta["chart_svg"]
    assert "- 정보화담당관: 200" in response.json()["text"]
    # The echo upstream's "reading" repeats the plan; it holds no number we did not compute.
    assert "interpretation_replaced" not in meta
    profile = {c["name"]: c for c in meta["profile"]}
    assert profile["예산"]["sum"] == 350 and profile["부서"]["unique"] == 3
    # The model saw column names, kinds and text categories, and the computed table — no figures.
    planning = internal.behaviour.received[-2]["messages"][-1]["content"]
    assert "열: 부서(글자: 정보화담당관, 민원실, 감사실), 분기(숫자), 예산(숫자)" in planning and "120" not in planning
    schema = internal.behaviour.received[-2]["response_format"]["json_schema"]["schema"]
    measured = next(s for s in schema["anyOf"] if s["properties"]["operation"].get("enum"))
    assert measured["properties"]["column"] == {"type": "string", "enum": ["분기", "예산"]}  # numbers only


def test_an_interpretation_with_invented_figures_is_replaced(services, upstreams):
    internal, _ = upstreams
    plan = '{"operation": "sum", "column": "예산", "group_by": "부서", "filter": null}'
    internal.behaviour.replies = [plan, "정보화담당관이 200으로 가장 많고, 세 부서 합계는 350입니다."]
    honest = run(services, "analyze", {"csv": BUDGET_CSV, "question": "부서별 예산 합계"}, model="int").json()
    assert "interpretation_replaced" not in honest["meta"] and honest["text"].endswith("합계는 350입니다.")
    internal.behaviour.replies = [plan, "정보화담당관이 200으로 가장 많고, 전체 합계는 600입니다."]
    invented = run(services, "analyze", {"csv": BUDGET_CSV, "question": "부서별 예산 합계"}, model="int").json()
    assert invented["meta"]["interpretation_replaced"]["invented_numbers"] == ["600"]
    assert "600" not in invented["text"]
    assert invented["text"].endswith("가장 큰 곳은 정보화담당관(200), 가장 작은 곳은 감사실(30)입니다. "
                                     "모두 더하면 350입니다. (모델의 해석에 계산 결과에 없는 숫자가 있어 "
                                     "계산값으로 바꿔 적었습니다.)")


def test_analyze_refuses_plans_it_cannot_trust(services, upstreams):
    internal, _ = upstreams
    internal.behaviour.reply = '{"operation": "sum", "column": "급여", "group_by": null}'
    bad = run(services, "analyze", {"csv": BUDGET_CSV, "question": "급여 합계"}, model="int")
    assert bad.status_code == 400 and "'급여' 열이 표에 없습니다" in bad.json()["error"]["message"]
    internal.behaviour.reply = '{"operation": "mean", "column": "예산", "group_by": null, "filter": {"분기": 1}}'
    ok = run(services, "analyze", {"csv": BUDGET_CSV, "question": "1분기 평균 예산"}, model="int")
    assert ok.json()["meta"]["value"] == 66.6667
    internal.behaviour.reply = '{"operation": "sum", "column": "예산", "group_by": null, ' \
                               '"filter": {"column": "분기", "value": "2분기"}}'
    assert run(services, "analyze", {"csv": BUDGET_CSV, "question": "2분기 예산 합계"},
               model="int").json()["meta"]["value"] == 150
    internal.behaviour.reply = '{"operation": "sum", "column": "예산", "group_by": null, ' \
                               '"filter": {"column": "부서", "value": "총무과"}}'
    unknown = run(services, "analyze", {"csv": BUDGET_CSV, "question": "총무과 예산"}, model="int")
    assert "'부서' 열에 '총무과' 값이 없습니다. 있는 값: 정보화담당관, 민원실, 감사실" in \
        unknown.json()["error"]["message"]
    internal.behaviour.reply = '{"operation": "sum", "column": "부서", "group_by": null, "filter": null}'
    text_sum = run(services, "analyze", {"csv": BUDGET_CSV, "question": "부서 합계"}, model="int")
    assert text_sum.status_code == 400
    message = text_sum.json()["error"]["message"]
    assert "'부서' 열은 숫자가 아니어서 합계 계산을 할 수 없습니다. 숫자 열: 분기, 예산" in message
    assert run(services, "analyze", {"question": "표 없음"}).status_code == 400


def test_analyze_profiles_an_xlsx_table(services):
    import base64
    import io

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["지역", "민원 건수"])
    for region, count in (("서울", 120), ("부산", 45)):
        book.active.append([region, count])
    buffer = io.BytesIO()
    book.save(buffer)
    upload = {"filename": "민원.xlsx", "content_base64": base64.b64encode(buffer.getvalue()).decode()}
    response = run(services, "analyze", {"file": upload})
    assert response.json()["text"] == "2행 2열의 표입니다."
    counts = {c["name"]: c for c in response.json()["meta"]["profile"]}["민원 건수"]
    assert (counts["type"], counts["max"], counts["sum"]) == ("number", 120, 165)


def test_analyze_reads_an_uploaded_cp949_csv(services):
    import base64

    upload = {"filename": "예산.csv", "content_base64": base64.b64encode(BUDGET_CSV.encode("cp949")).decode()}
    profiled = run(services, "analyze", {"file": upload})  # no question: a profile, no model call
    assert profiled.json()["text"] == "5행 3열의 표입니다." and profiled.json()["meta"]["source"]["kind"] == "csv"


def test_analyze_reads_a_table_from_an_hwpx_document(services, upstreams, tmp_path):
    import base64

    from hwpx import HwpxDocument

    document = HwpxDocument.new()
    document.add_paragraph("2025년 민원 처리 현황")
    table = document.add_table(4, 3)
    for r, row in enumerate((("부서", "처리 건수", "평균 일수"), ("민원실", "1,200", "3.5"),
                             ("정보화담당관", "300", "5"), ("감사실", "45", "7"))):
        for c, value in enumerate(row):
            table.set_cell_text(r, c, value)
    upload = {"filename": "현황.hwpx", "content_base64": base64.b64encode(document.to_bytes()).decode()}
    internal, _ = upstreams
    internal.behaviour.reply = '{"operation": "sum", "column": "처리 건수", "group_by": null, "filter": null}'
    response = run(services, "analyze", {"file": upload, "question": "전체 처리 건수는?"}, model="int")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["value"] == 1545 and body["text"] == "처리 건수 합계: 1,545"
    assert body["meta"]["source"] == {"kind": "hwpx", "filename": "현황.hwpx", "table": 1, "tables": 1}
    assert {c["name"]: c["type"] for c in body["meta"]["profile"]} == {
        "부서": "text", "처리 건수": "number", "평균 일수": "number"}
    wrong = run(services, "analyze", {"file": upload, "table": "2"})
    assert wrong.status_code == 400 and "표가 1개" in wrong.json()["error"]["message"]
    garbage = {"filename": "x.hwpx", "content_base64": "not base64!"}
    assert "base64" in run(services, "analyze", {"file": garbage}).json()["error"]["message"]


def register(platform, booking, auto_reads=False):
    from hanchang.core.principal import Role
    from hanchang.store import accounts

    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "admin-act", Role.AGENCY_ADMIN)
        platform.admin_key = accounts.create_key(session, "MOIS", "admin-act").secret
    server, spec = booking
    refused = httpx.post(platform.url + "/api/connectors", headers=platform.headers(), timeout=10,
                         json={"name": "회의실", "base_url": server.url, "spec": spec})
    assert refused.status_code == 403  # plain users cannot register connectors
    created = httpx.post(platform.url + "/api/connectors", headers=platform.headers(platform.admin_key),
                         timeout=10, json={"name": "회의실", "base_url": server.url, "spec": spec,
                                           "auto_approve_reads": auto_reads})
    assert created.status_code == 201, created.text
    return created.json()


def test_act_shows_the_call_and_sends_it_only_after_confirmation(services, upstreams, booking):
    internal, _ = upstreams
    server, _ = booking
    info = register(services, booking)
    assert any(op.startswith("create_booking: POST /bookings") for op in info["operations"])
    internal.behaviour.reply = ('{"operation": "create_booking", "arguments": {"room": "A101", "date": "2026-12-01", '
                                '"start": "10:00", "end": "11:00", "title": "예산 회의"}}')
    proposed = run(services, "act", {"connector": "회의실", "request": "12월 1일 10시 A101 예산 회의 예약"},
                   model="int")
    assert proposed.status_code == 200, proposed.text
    action = proposed.json()["meta"]["action"]
    assert proposed.json()["meta"]["needs_confirmation"] is True
    assert (action["method"], action["url"]) == ("POST", server.url + "/bookings")
    assert action["body"]["room"] == "A101" and action["status"] == "pending"
    assert httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json() == []  # nothing sent yet
    done = httpx.post(f"{services.url}/api/actions/{action['id']}/confirm", headers=services.headers(), timeout=10)
    assert done.json()["status"] == "executed" and done.json()["result"]["status"] == 201
    assert len(httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json()) == 1
    again = httpx.post(f"{services.url}/api/actions/{action['id']}/confirm", headers=services.headers(), timeout=10)
    assert again.status_code == 409
    services.usage_rows(at_least=1)
    with services.db.session() as session:
        logged = list(session.scalars(select(AuditRecord.action).where(AuditRecord.category == "action")))
    assert logged == ["connectors.register", "actions.propose", "actions.execute"]


def test_act_refusals(services, upstreams, booking):
    internal, _ = upstreams
    server, _ = booking
    register(services, booking)
    internal.behaviour.reply = '{"operation": "create_booking", "arguments": {"room": "A101", "date": "2026-12-02", ' \
                               '"start": "09:00", "end": "10:00", "title": "x"}}'
    action = run(services, "act", {"connector": "회의실", "request": "예약"}, model="int").json()["meta"]["action"]
    rejected = httpx.post(f"{services.url}/api/actions/{action['id']}/reject", headers=services.headers(), timeout=10)
    assert rejected.json()["status"] == "rejected"
    assert httpx.get(server.url + "/bookings", params={"date": "2026-12-02"}).json() == []
    internal.behaviour.reply = '{"operation": "drop_database", "arguments": {}}'
    unknown = run(services, "act", {"connector": "회의실", "request": "다 지워"}, model="int")
    assert unknown.status_code == 400 and "drop_database" in unknown.json()["error"]["message"]
    internal.behaviour.reply = '{"operation": "create_booking", "arguments": {"room": "A101", "color": "red"}}'
    wrong = run(services, "act", {"connector": "회의실", "request": "예약"}, model="int")
    assert wrong.status_code == 400 and "color" in wrong.json()["error"]["message"]
    other = httpx.post(f"{services.url}/api/actions/{action['id']}/confirm",
                       headers=services.headers(services.admin_key), timeout=10)
    assert other.status_code == 404  # another user's action is not reachable


def test_read_only_calls_can_be_auto_approved(services, upstreams, booking):
    internal, _ = upstreams
    register(services, booking, auto_reads=True)
    internal.behaviour.reply = '{"operation": "list_rooms", "arguments": {}}'
    response = run(services, "act", {"connector": "회의실", "request": "회의실 목록"}, model="int").json()
    assert response["meta"]["needs_confirmation"] is False
    assert response["meta"]["action"]["result"]["body"] == [{"room": "A101", "seats": 8}, {"room": "B201", "seats": 20}]


def test_agencies_add_their_own_services_in_the_config(platform_factory, upstreams):
    from hanchang.core.principal import Role
    from hanchang.store import accounts

    internal, _ = upstreams
    platform = platform_factory({
        "models": [{"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
                    "max_grade": "C"}],
        "services": {"custom": [{"id": "complaint_polish", "name_ko": "민원 답변 다듬기",
                                 "instructions": "민원 답변 초안을 공손한 공문 문체로 다듬으세요.",
                                 "input_label_ko": "답변 초안", "agencies": ["MOIS"]}]},
    })
    listed = {s["id"]: s for s in httpx.get(platform.url + "/api/services", headers=platform.headers()).json()["data"]}
    assert listed["complaint_polish"]["name_ko"] == "민원 답변 다듬기" and len(listed) == 8
    answer = run(platform, "complaint_polish", {"text": "내일 처리함."})
    assert answer.status_code == 200 and answer.json()["text"] == "내부: 내일 처리함."
    assert internal.behaviour.received[-1]["messages"][0]["content"].startswith("민원 답변 초안을 공손한")
    with platform.db.session() as session:  # another agency neither sees nor runs it
        accounts.create_agency(session, "KOSIS", "통계청")
        accounts.create_user(session, "KOSIS", "park", Role.USER)
        other = platform.headers(accounts.create_key(session, "KOSIS", "park").secret)
    assert "complaint_polish" not in {s["id"] for s in
                                      httpx.get(platform.url + "/api/services", headers=other).json()["data"]}
    assert httpx.post(platform.url + "/api/services/complaint_polish", headers=other,
                      json={"inputs": {"text": "x"}}).status_code == 404


def test_a_custom_service_may_not_take_a_built_in_id(tmp_path):
    from hanchang.config import ConfigError, Settings
    from hanchang.server import create_app

    settings = Settings(home=tmp_path, services={"custom": [{"id": "draft", "name_ko": "x", "instructions": "y"}]})
    with pytest.raises(ConfigError, match="service id 'draft' is already taken"):
        create_app(settings)


def test_analyze_refuses_an_xlsx_zip_bomb_like_upload_does(services, tmp_path):
    import base64
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["부서", "예산"])
    book.active.append(["민원실", 50])
    path = tmp_path / "bomb.xlsx"
    book.save(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/padding.xml", b"0" * (40 << 20))  # 40 MiB of zeros: a ~1000:1 ratio
    upload = {"filename": "bomb.xlsx", "content_base64": base64.b64encode(path.read_bytes()).decode()}
    response = run(services, "analyze", {"file": upload, "question": "부서별 예산 합계"}, model="int")
    assert response.status_code == 400, response.text
    assert "지나치게 커지는" in response.json()["error"]["message"]


@pytest.mark.parametrize("title", ["보고\x07서", "제목\x00", "\u202e역방향", "a" * 400])
def test_export_with_odd_titles_is_never_a_500(services, title):
    for kind in ("docx", "hwpx", "hwp"):
        response = httpx.post(services.url + "/api/services/draft/export", headers=services.headers(), timeout=60,
                              json={"title": title, "text": "□ 개요\n○ 내용", "format": kind})
        assert response.status_code in (200, 400, 422), (kind, response.text[:300])
        if response.status_code == 200:
            assert "\x07" not in response.headers.get("content-disposition", "")
