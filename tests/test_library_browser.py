"""Agents, the common library and the adoption checklist in a real browser: a civil servant of
one agency builds an agent over their rules, tries and publishes it; a colleague in another
agency finds it, copies it, and uses it from the window; an admin fills in the checklist.

With UPDATE_SCREENSHOTS=1 the pictures are also written to docs/screenshots/.
"""

from __future__ import annotations

import json

import pytest

from conftest import CHROMIUM_ARGS, default_models, sign_in_window
from hanchang.core.principal import Role
from hanchang.knowledge import collections as kc
from hanchang.store import accounts
from test_agents_library import A_MARKER, COMMON_MARKER, ingest
from test_operations_browser import CHROMIUM, PASSWORD, playwright, shoot


@pytest.fixture
def browser_world(platform_factory, upstream, tmp_path):
    platform = platform_factory({"models": default_models(upstream.base_url)})
    with platform.db.session() as session:
        accounts.create_agency(session, "MOEF", "기획재정부")
        accounts.create_user(session, "MOIS", "lee", Role.USER, PASSWORD)
        accounts.create_user(session, "MOIS", "boss", Role.AGENCY_ADMIN, PASSWORD)
        accounts.create_user(session, "MOEF", "park", Role.USER, PASSWORD)
        own = kc.create(session, "MOIS", "출장규정").id
        common = kc.create(session, "MOIS", "공통복무", is_common=True).id
    ingest(platform, tmp_path, own, "규정.txt", f"{A_MARKER}: 출장 여비는 출장을 마친 날부터 사흘 안에 정산한다.")
    ingest(platform, tmp_path, common, "복무.txt", f"{COMMON_MARKER}: 출장 중 복무는 공통 복무규정을 따른다.")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def page():
            made = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            made.set_default_timeout(20_000)
            return made
        yield platform, upstream, page
        browser.close()


def test_an_agent_is_built_published_and_used_by_another_agency(browser_world, tmp_path):
    platform, upstream, new_page = browser_world
    author = new_page()
    sign_in_window(author, platform.url, "MOIS", "lee", PASSWORD)
    author.click("#open-library")
    author.wait_for_selector("#new-agent")
    author.click("#new-agent")
    author.fill("#a-name", "출장 정산 도우미")
    author.fill("#a-description", "출장 여비 정산 규정을 근거로 답합니다.")
    author.fill("#a-instructions", "출장 규정을 근거로, 정산 기한과 서류를 짧게 안내하세요.")
    author.check("#a-collections label:has-text('출장규정') input")
    author.check("#a-collections label:has-text('공통복무') input")
    author.check("#a-services label:has-text('질의응답') input")
    author.fill("#a-examples", "출장비 정산 기한은 언제까지인가요?\n필요한 서류는?")
    author.click("#agent-form button[type=submit]")
    author.wait_for_selector("article[data-agent] h3:has-text('출장 정산 도우미')")
    # Try it on the page: the answer is grounded on the agency's own rules.
    card = author.locator("article[data-agent]").first
    card.locator("button:has-text('시험')").click()
    author.click("#try-form button[type=submit]")
    author.wait_for_selector("#try-answer p.muted:has-text('출처')")
    assert A_MARKER in json.dumps(upstream.behaviour.received[-1], ensure_ascii=False)
    shoot(author, tmp_path, "library-agents.png")

    # Publishing refuses personal data (the reason is shown in the dialog), then goes through.
    card.locator("button:has-text('게시')").click()
    author.fill("#pub-description", "문의는 010-2345-6789로 하세요.")
    author.click("#publish-form button[value=ok]")
    author.wait_for_selector("#publish-error:not([hidden])")
    assert "개인정보" in author.inner_text("#publish-error")
    author.fill("#pub-description", "출장 여비 정산 규정 안내 에이전트")
    author.fill("#pub-tags", "출장, 정산")
    author.click("#publish-form button[value=ok]")
    author.wait_for_selector("#notice:has-text('게시했습니다')")

    # A colleague in another agency finds it in the library, previews and copies it.
    colleague = new_page()
    sign_in_window(colleague, platform.url, "MOEF", "park", PASSWORD)
    colleague.goto(platform.url + "/library?tab=library")
    colleague.wait_for_selector("article[data-asset] h3:has-text('출장 정산 도우미')")
    asset = colleague.locator("article[data-asset]").first
    assert "행정안전부" in asset.inner_text() and "출장" in asset.inner_text()
    asset.locator("button:has-text('미리보기')").click()
    colleague.wait_for_selector("#preview pre.document")
    assert "정산 기한과 서류" in colleague.inner_text("#preview")
    asset.locator("button:has-text('우리 기관으로 복사')").click()
    colleague.wait_for_selector("#notice:has-text('복사했습니다')")
    assert "출장규정" in colleague.inner_text("#notice")  # A's own collection does not come along
    shoot(colleague, tmp_path, "library-common.png")

    # … and uses the published one straight from the window: grounded on the common rules only.
    before = len(upstream.behaviour.received)
    colleague.locator("article[data-asset]").first.locator("a:has-text('바로 쓰기')").click()
    colleague.wait_for_selector("#model optgroup[label='업무 에이전트'] option", state="attached")
    assert colleague.eval_on_selector("#model", "s => s.value").startswith("agent:")
    colleague.fill("#question", "출장 중 복무는 어떻게 하나요?")
    colleague.press("#question", "Enter")
    colleague.wait_for_selector("article.message.assistant:not(.streaming) .actions")
    sent = json.dumps(upstream.behaviour.received[before:], ensure_ascii=False)
    assert COMMON_MARKER in sent and A_MARKER not in sent
    shoot(colleague, tmp_path, "library-window-agent.png")


def test_an_admin_fills_in_the_adoption_checklist(browser_world, tmp_path):
    platform, _, new_page = browser_world
    admin = new_page()
    sign_in_window(admin, platform.url, "MOIS", "boss", PASSWORD)
    admin.click("#open-checklist")
    admin.wait_for_selector("tr[data-item='1.2'] .badge.auto")
    before = admin.inner_text("#progress-total")
    admin.check("tr[data-item='0.1.1'] input[value=yes]")
    admin.wait_for_selector("#notice:has-text('0.1.1 저장했습니다')")
    admin.fill("tr[data-item='0.1.1'] input[name=note]", "민원 응대 업무 분석 완료")
    admin.press("tr[data-item='0.1.1'] input[name=note]", "Tab")
    admin.wait_for_function("b => document.querySelector('#progress-total').textContent !== b", arg=before)
    with admin.expect_download() as download:
        admin.click("#export-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    admin.reload()
    admin.wait_for_selector("tr[data-item='0.1.1'] input[value=yes]:checked")
    assert admin.input_value("tr[data-item='0.1.1'] input[name=note]") == "민원 응대 업무 분석 완료"
    shoot(admin, tmp_path, "checklist.png")
