"""The window's 평가 page in a real browser: an admin sees the agency's runs, opens one's items and
compares two item by item (the flipped item, McNemar's p); a user who is not an admin is refused."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from conftest import CHROMIUM_ARGS, sign_in_window, start_upstream
from hanchang.core.principal import Role
from hanchang.store import accounts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct-horse-7"

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: .ci/run installs it with apt-get install chromium")
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _run(platform, key, eval_id, replies, upstream):
    upstream.behaviour.replies = list(replies)
    source = {"type": "file_content", "content": [
        {"item": {"id": "grades", "question": "데이터 보안 등급은?", "facts": ["기밀", "민감", "공개"]}},
        {"item": {"id": "slo", "question": "문답 서비스 응답 시간 목표는?", "facts": ["7초"]}}]}
    made = httpx.post(f"{platform.v1}/evals/{eval_id}/runs", headers=platform.headers(key), timeout=30,
                      json={"name": f"run {len(replies)}", "data_source": {"type": "completions",
                                                                       "model": "int", "source": source}})
    assert made.status_code == 200, made.text
    deadline = time.monotonic() + 30
    while httpx.get(f"{platform.v1}/evals/{eval_id}/runs/{made.json()['id']}", headers=platform.headers(key),
                    timeout=10).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return made.json()["id"]


def test_an_admin_compares_two_runs_on_the_evals_page(platform_factory):
    upstream = start_upstream()
    platform = platform_factory({"models": [{"name": "int", "backend": "openai", "base_url": upstream.base_url,
                                             "zone": "internal", "max_grade": "C"}]})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "hong", Role.AGENCY_ADMIN, PASSWORD)
        accounts.create_user(session, "MOIS", "lee", Role.USER, PASSWORD)
        key = accounts.create_key(session, "MOIS", "hong").secret
    created = httpx.post(f"{platform.v1}/evals", headers=platform.headers(key), timeout=30,
                         json={"name": "등급", "testing_criteria": [{"type": "key_fact", "name": "key_fact"}]}).json()
    before = _run(platform, key, created["id"], ["기밀, 민감, 공개입니다.", "10초 이내입니다."], upstream)
    after = _run(platform, key, created["id"], ["기밀, 민감, 공개입니다.", "7초 이내입니다.", "-"], upstream)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            sign_in_window(page, platform.url, "MOIS", "hong", PASSWORD)
            page.click("#open-evals")
            page.wait_for_selector(f"button[data-run='{after}']")
            assert "key_fact 50.0%" in page.inner_text("#runs") and "key_fact 100.0%" in page.inner_text("#runs")
            page.select_option("#base", before)
            page.select_option("#other", after)
            page.click("#compare-form button[type=submit]")
            page.wait_for_selector("#comparison:not([hidden])")
            shown = page.inner_text("#comparison")
            assert "실패→통과" in shown and "slo" in shown and "McNemar" in shown and "1.000" in shown
            page.click(f"button[data-run='{after}']")
            page.wait_for_selector("#run-items:not([hidden])")
            assert "7초 이내입니다." in page.inner_text("#items-body")
            browser.close()
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            sign_in_window(page, platform.url, "MOIS", "lee", PASSWORD)
            page.wait_for_selector("#question")
            assert page.locator("#open-evals").count() == 0
            assert page.goto(platform.url + "/evals").status == 403
            browser.close()
    finally:
        upstream.server.stop()
