"""The operations page in a real browser: a 👎 given in the window is reviewed on the page, the
charts draw from recorded usage, budgets and SLOs are shown, the KPI report downloads.

With UPDATE_SCREENSHOTS=1 the pictures are also written to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hanchang_devtools.demo_usage import generate
from sqlalchemy import select

from conftest import CHROMIUM_ARGS, sign_in_window
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import Feedback

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct-horse-7"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: .ci/run installs it with apt-get install chromium")
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)


def shoot(target, tmp_path: Path, name: str) -> None:
    """A picture of the page's viewport, or of one element (a section)."""
    path = tmp_path / name
    target.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copy(path, SCREENSHOTS / name)


@pytest.fixture
def ops(platform_factory, upstream, tmp_path):
    platform = platform_factory({
        "models": [{"name": "int", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
                    "max_grade": "C", "price": {"input_per_1k_tokens": 2, "output_per_1k_tokens": 6}}],
        "budgets": {"per_agency": {"requests": 3000, "tokens": 3_000_000, "won": 20_000}}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "hong", Role.AGENCY_ADMIN, PASSWORD)
        accounts.create_agency(session, "MOLEG", "법제처")
        accounts.create_user(session, "MOLEG", "park", Role.USER, PASSWORD)
    # History up to the start of today in Seoul (the page's calendar), whatever the hour the tests run:
    # each generated day spreads its calls over ten hours, which must not reach into today.
    midnight = datetime.now(ZoneInfo("Asia/Seoul")).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    generate(platform.db, "MOIS", days=14, calls_per_day=90, models=("int",), now=midnight)
    generate(platform.db, "MOLEG", days=14, calls_per_day=500, models=("int",), seed=3, now=midnight)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        yield platform, page
        browser.close()


def test_an_agency_admin_reviews_operations_in_the_browser(ops, tmp_path):
    platform, page = ops
    sign_in_window(page, platform.url, "MOIS", "hong", PASSWORD)
    # A real answer in the window, rated 👎 with a reason.
    page.fill("#question", "출장비 정산 서류는 무엇인가요?")
    page.press("#question", "Enter")
    page.wait_for_selector("article.message.assistant:not(.streaming) .actions")
    page.once("dialog", lambda dialog: dialog.accept("서식 번호가 빠졌습니다"))
    page.locator("article.message.assistant").last.locator(".rate-down").click()
    page.wait_for_selector(".rate-down[aria-pressed=true]")

    page.click("#open-ops")
    page.wait_for_selector("body[data-loaded=true]")
    assert "운영 현황" in page.inner_text("h1") and "MOIS" in page.inner_text("#scope-label")
    # Cards and charts come from this agency's recorded usage only (MOLEG's larger traffic is not here).
    assert page.locator("#chart-calls canvas").count() == 1
    assert page.locator(".charts canvas").count() == 7, page.inner_text(".charts")
    calls = int(page.locator(".card-value").first.inner_text().replace(",", ""))
    overview = page.evaluate("async () => (await (await fetch('/api/ops/overview')).json()).totals.calls")
    assert calls == overview and 700 < calls < 1500
    assert "SLO 질의응답 7초" in page.inner_text("#chart-latency")
    # No emoji: a stock Debian font set draws them as empty boxes.
    assert not re.search("[\U0001F300-\U0001FAFF\u2600-\u27BF]", page.inner_text("body"))
    assert "질의응답" in page.inner_text("#slo") and "가용성" in page.inner_text("#slo")
    budgets = page.inner_text("#budgets")
    assert "기관 MOIS" in budgets and "3,000" in budgets and "MOLEG" not in budgets
    assert page.locator("#agency").count() == 0  # an agency admin cannot pick another agency
    shoot(page, tmp_path, "ops.png")
    shoot(page.locator("section[aria-labelledby=slo-title]"), tmp_path, "ops-slo.png")
    shoot(page.locator("section[aria-labelledby=budget-title]"), tmp_path, "ops-budgets.png")

    # The 👎 from the window is waiting for review with its question and reason.
    item = page.locator(".feedback-item", has_text="서식 번호가 빠졌습니다")
    assert "출장비 정산 서류는" in item.inner_text()
    item.locator("select").select_option("knowledge_gap")
    item.locator("textarea").fill("여비 규정 별지 제3호 서식을 제출합니다.")
    item.locator("button").click()
    page.wait_for_selector(".feedback-item [role=status]:has-text('지식 부족')")
    with platform.db.session() as session:
        reviewed = session.scalar(select(Feedback).where(Feedback.reason == "서식 번호가 빠졌습니다"))
        assert reviewed.review_status == "knowledge_gap" and "별지 제3호" in reviewed.expected_answer
    shoot(item, tmp_path, "ops-feedback.png")
    report = page.locator("section[aria-labelledby=report-title]")
    report.scroll_into_view_if_needed()
    shoot(page, tmp_path, "ops-report.png")

    # The KPI report downloads as HWPX for the month shown.
    with page.expect_download() as download:
        page.click("#report-form [data-format=hwpx]")
    assert download.value.suggested_filename.startswith("hanchang-kpi-MOIS-")
    assert download.value.suggested_filename.endswith(".hwpx")
    # A narrower date range redraws with hourly buckets.
    page.evaluate("() => { document.body.dataset.loaded = 'false'; }")
    page.click("[data-days='1']")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator(".charts canvas").count() == 7, page.inner_text(".charts")
    assert page.inner_text(".card-value >> nth=0") == "1"  # today: the one question asked above
    assert page.evaluate("async () => (await (await fetch('/api/ops/overview?start=' + "
                         "document.querySelector('#from').value + '&end=' + document.querySelector('#to').value))"
                         ".json()).step") == "hour"


def test_the_operations_page_is_for_admins(ops):
    platform, page = ops
    sign_in_window(page, platform.url, "MOLEG", "park", PASSWORD)
    page.wait_for_selector("#question")
    assert page.locator("#open-ops").count() == 0
    response = page.goto(platform.url + "/ops")
    assert response.status == 403
    assert "관리자" in page.inner_text("body")
