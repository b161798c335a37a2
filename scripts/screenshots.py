"""Regenerate docs/screenshots/*.png: the window on the embedded default, as a new user sees it.

    .venv/bin/python scripts/screenshots.py

Starts Hanchang on a throwaway HANCHANG_HOME (embedded model, sample corpus), signs in with
the printed first account, asks a grounded question, runs the analyze and act services (against
the demo booking API), and photographs the main screens in Debian's Chromium (1280×800 and a
390×844 phone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def services(page, url: str, key: str, home: Path) -> None:
    """The work services: a table analysed with a chart, then a booking shown before it is sent."""
    from hanchang_devtools.demo_booking import create_booking_app
    from hanchang_devtools.threaded_server import ThreadedServer

    page.click("#open-services")
    page.click(".service-tab[data-service=analyze]")
    page.wait_for_selector("#svc-file")
    table = home / "부서별 예산.csv"
    table.write_text("부서,분기,예산\n정보화담당관,1,120\n정보화담당관,2,80\n민원실,1,50\n민원실,2,70\n감사실,1,30\n",
                     encoding="utf-8")
    page.set_input_files("#svc-file", str(table))
    page.fill("#svc-question", "부서별 예산 합계는?")
    page.click("#service-run")
    page.wait_for_selector("#service-result .service-output, #service-result .notice-line.error")
    page.screenshot(path=str(OUT / "service-analyze.png"))

    booking_app = create_booking_app()
    booking = ThreadedServer(booking_app).start()
    try:
        httpx.post(url + "/api/connectors", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                   json={"name": "회의실", "base_url": booking.url, "spec": booking_app.openapi()}).raise_for_status()
        page.click(".service-tab[data-service=act]")
        page.wait_for_selector("#svc-connector option", state="attached")
        page.fill("#svc-request", "2026-12-01 10:00부터 11:00까지 A101 회의실에 예산 회의 예약")
        page.click("#service-run")
        page.wait_for_selector("#service-result .service-output, #service-result .notice-line.error")
        page.screenshot(path=str(OUT / "service-act.png"))
    finally:
        booking.stop()


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="hanchang-shots-"))
    env = {**os.environ, "HANCHANG_HOME": str(home)}
    hanchang = [sys.executable, "-m", "hanchang"]
    subprocess.run([*hanchang, "setup"], env=env, check=True, capture_output=True)
    credentials = dict(line.split("=", 1) for line in
                       (home / "initial-credentials.txt").read_text().splitlines())
    server = subprocess.Popen([*hanchang, "serve", "--port", "8799"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:8799"
    try:
        for _ in range(100):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.fill("#user", credentials["user"])
            page.fill("#password", credentials["password"])
            page.screenshot(path=str(OUT / "login.png"))
            page.click("button[type=submit]")
            page.wait_for_selector("#model option", state="attached")
            page.click(".kb summary")
            page.check("#collections input[type=checkbox]")
            page.fill("#question", "데이터 보안 등급 세 가지는 무엇인가요?")
            page.press("#question", "Enter")
            page.wait_for_selector("article.message.assistant:not(.streaming) .actions")
            page.click(".kb summary")
            page.screenshot(path=str(OUT / "chat.png"))
            page.locator(".cite-link").nth(1).click()
            page.wait_for_selector("#citation-dialog[open]")
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "citation.png"))
            page.click("#citation-dialog button")
            services(page, url, credentials["api_key"], home)
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(500)  # let the sidebar finish sliding away
            page.screenshot(path=str(OUT / "narrow.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"written {', '.join(sorted(p.name for p in OUT.glob('*.png')))} in {OUT}")


if __name__ == "__main__":
    main()
