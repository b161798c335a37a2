"""The single window in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import CHROMIUM_ARGS, sign_in_window
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_sources
from hanchang.store import accounts
from hanchang.store.tables import Feedback

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct-horse-7"
RULE = "제12조(재택근무) 재택근무는 주 2일까지 신청할 수 있다."

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: .ci/run installs it with apt-get install chromium")
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def window(request, platform_factory, upstreams, tmp_path):
    internal, external = upstreams
    reroute = getattr(request, "param", True)
    platform = platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
         "max_grade": "C"},
        {"name": "ext", "backend": "openai", "base_url": external.base_url, "zone": "external",
         "max_grade": "O"},
    ], "policy": {"reroute": reroute, "preferred_internal": ["int"]}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "hong", Role.AGENCY_ADMIN, PASSWORD)
        collection_id = kc.create(session, "MOIS", "복무규정").id
    rule = tmp_path / "복무규정.txt"
    rule.write_text(f"제3장 근무\n{RULE}\n", encoding="utf-8")
    ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), collection_id,
                   [SourceFile(rule, "upload:복무규정.txt", "복무규정.txt")])
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(20_000)
        yield platform, page, tmp_path
        browser.close()


def sign_in(page, url, password=PASSWORD):
    sign_in_window(page, url, "MOIS", "hong", password)


def ask(page, question):
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_selector("article.message.assistant:not(.streaming) .actions, article.message.notice")


def test_failed_sign_in_says_why(window):
    platform, page, _ = window
    sign_in(page, platform.url, "wrong-password")
    assert "암호가 맞지 않습니다" in page.inner_text("#login-error")
    assert page.locator("#question").count() == 0


def test_a_civil_servant_works_through_the_window(window):
    platform, page, tmp_path = window
    sign_in(page, platform.url)
    page.wait_for_selector("#model option", state="attached")
    assert "내부망 모델 · 기밀까지" in page.inner_text("#model")
    first = page.locator("#model option").first
    assert first.inner_text().startswith("내부망 모델 · 기밀까지") and first.get_attribute("title") == "int"

    # A grounded question: the answer streams in and carries a citation that opens its passage.
    page.click(".kb summary")
    page.check("#collections input[type=checkbox]")
    ask(page, "재택근무는 며칠까지 되나요?")
    answer = page.locator("article.message.assistant").last
    assert answer.locator(".message-body").inner_text().startswith("내부:")
    assert "복무규정" in answer.locator(".citations").inner_text()
    answer.locator(".cite-link").first.click()
    page.wait_for_selector("#citation-dialog[open]")
    assert RULE in page.inner_text("#citation-text")
    assert "제3장 근무" in page.inner_text("#citation-meta")
    page.click("#citation-dialog button")

    # Feedback is stored for the operations figures.
    answer.locator(".rate-up").click()
    page.wait_for_selector(".rate-up[aria-pressed=true]")
    with platform.db.session() as session:
        assert [f.rating for f in session.scalars(select(Feedback))] == [1]

    # Upload a document with per-file results.
    note = tmp_path / "공지.txt"
    note.write_text("연가 신청은 전자결재로 한다.", encoding="utf-8")
    page.set_input_files("#upload-files", str(note))
    page.wait_for_selector("#upload-results li")
    assert "ingested" in page.inner_text("#upload-results")

    # Sensitive data with an external model: the policy reroutes, and the page says so in Korean.
    page.select_option("#model", "ext")
    page.check("input[name=grade][value=S]")
    ask(page, "민감한 인사 자료 요약")
    rerouted = page.locator("article.message.assistant").last
    assert "'ext' 대신" in rerouted.locator(".notice-line.reroute").inner_text()
    assert "민감(S)" in rerouted.locator(".badge").first.inner_text()

    # Conversations are listed; signing out returns to the sign-in page.
    assert page.locator("#conversations li").count() == 1
    page.click("#sign-out")
    page.wait_for_selector("#password")


def test_a_large_upload_shows_its_progress_and_results(window):
    """Past the size set for waiting, an upload becomes a background job: the window follows it."""
    platform, page, tmp_path = window
    platform.settings.knowledge.background_over_bytes = 10
    sign_in(page, platform.url)
    page.click("details.kb summary")
    notes = []
    for number in range(3):
        note = tmp_path / f"공지{number}.txt"
        note.write_text(f"연가 신청 안내 {number}: 전자결재로 신청한다.", encoding="utf-8")
        notes.append(str(note))
    page.set_input_files("#upload-files", notes)
    page.wait_for_selector("#upload-results li.job")
    page.wait_for_selector("#upload-results li.job:has-text('완료')", timeout=60_000)
    text = page.inner_text("#upload-results")
    assert "3/3개" in text and text.count("ingested") == 3


def test_upload_controls_are_shown_only_to_who_may_upload(window):
    platform, page, _ = window
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "reader", Role.USER, PASSWORD)
    sign_in_window(page, platform.url, "MOIS", "reader", PASSWORD)
    page.click("details.kb summary")
    page.wait_for_selector("#collections label")
    assert not page.locator(".upload").is_visible() and not page.locator("label[for=upload-files]").is_visible()
    page.context.clear_cookies()
    sign_in(page, platform.url)  # an agency admin
    page.click("details.kb summary")
    page.wait_for_selector("label[for=upload-files]", state="visible")


def test_refusal_keeps_the_question(window, upstreams):
    platform, page, _ = window
    internal, _ = upstreams
    internal.server.stop()  # no internal model left to reroute to
    sign_in(page, platform.url)
    page.wait_for_selector("#model option", state="attached")
    page.select_option("#model", "ext")
    page.check("input[name=grade][value=C]")
    ask(page, "기밀 문서 요약")
    assert "모델이 지금 응답하지 않습니다" in page.locator("article.message.notice").last.inner_text()
    page.reload()
    page.locator("#conversations .conv").first.click()
    page.wait_for_selector("article.message.user")
    assert page.locator("article.message.user").last.inner_text().endswith("기밀 문서 요약")


@pytest.mark.parametrize("window", [False], indirect=True)
def test_policy_refusal_is_explained_in_korean(window, upstreams):
    platform, page, _ = window
    _, external = upstreams
    sign_in(page, platform.url)
    page.wait_for_selector("#model option", state="attached")
    page.select_option("#model", "ext")
    page.check("input[name=grade][value=C]")
    ask(page, "기밀 작전 계획 요약")
    notice = page.locator("article.message.notice").last.inner_text()
    assert "기밀(C) 등급 자료는 외부망 모델" in notice and "내부망 모델을 선택하세요" in notice
    assert external.behaviour.received == []


def open_service(page, service_id):
    page.click(f".service-tab[data-service={service_id}]")
    page.wait_for_selector(f".service-tab[data-service={service_id}][aria-pressed=true]")
    page.wait_for_selector("#service-run")


def run_service(page):
    page.click("#service-run")
    page.wait_for_selector("#service-result .service-output, #service-result .notice-line.error")
    return page.locator("#service-result")


def test_work_services_from_the_window(window, upstreams, booking, tmp_path):
    platform, page, _ = window
    internal, _ = upstreams
    sign_in(page, platform.url)
    page.wait_for_selector("#model option", state="attached")
    page.select_option("#model", "int")
    page.click("#open-services")
    page.wait_for_selector(".service-tab")
    assert page.locator(".service-tab").count() == 7 and page.locator("#composer").is_hidden()

    # 질의응답: a grounded answer with a citation that opens its passage.
    open_service(page, "qa")
    page.fill("#svc-question", "재택근무는 며칠까지 되나요?")
    page.check("#svc-collections input[type=checkbox]")
    result = run_service(page)
    assert result.locator(".message-body").inner_text().startswith("내부:")
    result.locator(".cite-link").first.click()
    page.wait_for_selector("#citation-dialog[open]")
    assert RULE in page.inner_text("#citation-text")
    page.click("#citation-dialog button")

    # 요약 from an uploaded document; 번역 with the default languages.
    open_service(page, "summarize")
    memo = tmp_path / "회의.txt"
    memo.write_text("김 과장: 예산을 늘립시다. 이 주무관: 다음 주까지 검토하겠습니다.", encoding="utf-8")
    page.set_input_files("#svc-file", str(memo))
    page.select_option("#svc-style", "minutes")
    result = run_service(page)
    assert "예산을 늘립시다" in result.locator(".message-body").inner_text()
    assert "자료: 회의.txt" in result.inner_text()
    open_service(page, "translate")
    page.fill("#svc-text", "디지털플랫폼정부")
    assert "내부: 디지털플랫폼정부" in run_service(page).inner_text()

    # 문서 작성: a template chosen by its Korean name, downloaded as HWPX that opens as a document.
    open_service(page, "draft")
    assert "업무계획/보고서" in page.inner_text("#svc-template")
    page.select_option("#svc-template", "report")
    page.fill("#svc-request", "AI 공통기반 추진 보고서")
    run_service(page)
    with page.expect_download() as download:
        page.click("button[data-export=hwpx]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "업무계획_보고서.hwpx"
    from hanchang.knowledge.parsers import parse

    assert "AI 공통기반 추진 보고서" in parse(saved).text

    # 상담 지원: a counsellor-only draft.
    open_service(page, "counsel")
    page.fill("#svc-question", "재택근무를 주 3일 할 수 있나요?")
    page.check("#svc-collections input[type=checkbox]")
    assert "상담원용 초안" in run_service(page).inner_text()

    # 분석·활용: an uploaded CSV; the figures come from pandas, the chart is an image.
    open_service(page, "analyze")
    table = tmp_path / "예산.csv"
    table.write_text("부서,예산\n민원실,50\n민원실,70\n감사실,30\n", encoding="utf-8")
    page.set_input_files("#svc-file", str(table))
    page.fill("#svc-question", "부서별 예산 합계")
    internal.behaviour.reply = '{"operation": "sum", "column": "예산", "group_by": "부서", "filter": null}'
    result = run_service(page)
    assert "민원실: 120" in result.locator(".message-body li").first.inner_text()
    assert result.locator("img.chart").get_attribute("src").startswith("data:image/svg+xml")

    # 서비스 처리: the exact call is shown; nothing is sent until confirmed; rejecting sends nothing.
    server, spec = booking
    with platform.db.session() as session:
        admin = accounts.create_key(session, "MOIS", "hong").secret
    import httpx

    assert httpx.post(platform.url + "/api/connectors", headers=platform.headers(admin), timeout=10,
                      json={"name": "회의실", "base_url": server.url, "spec": spec}).status_code == 201
    internal.behaviour.reply = ('{"operation": "create_booking", "arguments": {"room": "A101", '
                                '"date": "2026-12-01", "start": "10:00", "end": "11:00", "title": "예산 회의"}}')
    open_service(page, "act")
    page.select_option("#svc-connector", "회의실")
    page.fill("#svc-request", "12월 1일 10시 A101 예산 회의 예약")
    result = run_service(page)
    assert f"POST {server.url}/bookings" in result.locator(".action-request").inner_text()
    assert httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json() == []
    page.click("#action-confirm")
    page.wait_for_selector(".action-box h3:has-text('실행됨')")
    assert len(httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json()) == 1
    run_service(page)
    page.click("#action-reject")
    page.wait_for_selector(".action-box h3:has-text('취소됨')")
    assert len(httpx.get(server.url + "/bookings", params={"date": "2026-12-01"}).json()) == 1

    # An MCP server registered as a connector: its tool call is shown, and sent only once confirmed.
    from hanchang_devtools.demo_mcp import create_petition_app
    from hanchang_devtools.threaded_server import ThreadedServer

    app, _, received = create_petition_app()
    mcp_server = ThreadedServer(app).start()
    try:
        assert httpx.post(platform.url + "/api/connectors", headers=platform.headers(admin), timeout=30, json={
            "name": "민원대장", "base_url": mcp_server.url + "/mcp", "spec": {"mcp": {}}}).status_code == 201
        internal.behaviour.reply = ('{"operation": "register_petition", "arguments": '
                                    '{"title": "보도블록 파손", "district": "종로구"}}')
        open_service(page, "act")
        page.select_option("#svc-connector", "민원대장")
        page.fill("#svc-request", "종로구 보도블록 파손 민원 접수")
        result = run_service(page)
        assert "MCP 도구 register_petition" in result.locator(".action-request").inner_text()
        assert received == []
        page.click("#action-confirm")
        page.wait_for_selector(".action-box h3:has-text('실행됨')")
        assert received == [{"tool": "register_petition", "title": "보도블록 파손", "district": "종로구"}]
        assert "접수" in page.locator(".action-result").last.inner_text()
        if os.environ.get("UPDATE_SCREENSHOTS"):
            page.screenshot(path=str(Path(__file__).parent.parent / "docs" / "screenshots" / "service-act-mcp.png"))
    finally:
        mcp_server.stop()

    # An input error is shown in Korean, and returning to chat brings the composer back.
    open_service(page, "analyze")
    assert "분석할 표를 넣어 주세요" in run_service(page).inner_text()
    page.click("#new-chat")
    assert page.locator("#composer").is_visible() and page.locator("#services-view").is_hidden()
