"""Single sign-on in a real browser through a real OpenID provider: the certified `oidc-provider`
package (devtools/oidc_provider, Node.js) signs civil servants in; Hanchang maps their claims to
an agency and a role, creates or links their account, and logs them out at the provider too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from hanchang_devtools.threaded_server import free_port
from sqlalchemy import select

from conftest import CHROMIUM_ARGS, default_models
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import AuditRecord, User, UserIdentity

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "devtools" / "oidc_provider"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SECRET = "provider-client-secret-for-tests"
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js runs the test OpenID provider"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]


@pytest.fixture
def sso(platform_factory, upstream, monkeypatch):
    assert (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(), "run ./scripts/install dev (npm ci)"
    monkeypatch.setenv("HANCHANG_OIDC_CLIENT_SECRET", SECRET)
    port = free_port()
    platform = platform_factory({"models": default_models(upstream.base_url), "oidc": {
        "issuer": f"http://127.0.0.1:{port}", "client_id": "hanchang",
        "scopes": ["openid", "profile", "email", "agency"], "role_map": {"ai-admin": "agency_admin"}}})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "hong", Role.USER, "correct-horse-7")
    env = {**os.environ, "PORT": str(port), "CLIENT_SECRET": SECRET,
           "REDIRECT_URI": platform.url + "/auth/oidc/callback", "POST_LOGOUT_URI": platform.url + "/"}
    provider = subprocess.Popen(["node", "provider.mjs"], cwd=PROVIDER_DIR, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    try:
        assert '"issuer"' in provider.stdout.readline()  # listening
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield platform, browser
            browser.close()
    finally:
        provider.terminate()
        provider.wait(10)


def sign_in_at_provider(browser, platform, account: str):
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    page.goto(platform.url + "/")
    if os.environ.get("UPDATE_SCREENSHOTS") and account == "kim.sso":
        page.screenshot(path=str(Path(__file__).parent.parent / "docs" / "screenshots" / "login-sso.png"))
    page.click("#sso")
    page.wait_for_selector("input[name=login]")  # the provider's own sign-in page
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_selector("button[type=submit]:has-text('Continue'), #login-error, #question")
    if page.locator("button[type=submit]:has-text('Continue')").count():  # the provider's consent
        page.click("button[type=submit]:has-text('Continue')")
    page.wait_for_selector("#question, #login-error")
    return page


def records(platform, action: str) -> list[AuditRecord]:
    with platform.db.session() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def test_a_civil_servant_signs_in_through_the_agency_provider_and_out_again(sso):
    platform, browser = sso
    page = sign_in_at_provider(browser, platform, "kim.sso")
    assert page.locator("#question").is_visible()
    assert "kim.sso · MOIS" in page.inner_text(".sidebar")
    with platform.db.session() as session:
        user = session.scalar(select(User).where(User.name == "kim.sso"))
        identity = session.scalar(select(UserIdentity).where(UserIdentity.user_id == user.id))
    assert user.role == "user" and user.password_hash is None
    assert identity.issuer == platform.settings.oidc.issuer and identity.subject == "kim.sso"
    assert [r.user_name for r in records(platform, "users.create")] == ["kim.sso"]
    assert len(records(platform, "auth.sso_login")) == 1
    # The session works like a password one: the API answers with its cookie and CSRF token.
    assert page.evaluate("fetch('/api/conversations').then(r => r.status)") == 200
    # Signing out ends the session here and at the provider, then comes back to the sign-in page.
    page.click("#sign-out")
    page.wait_for_url(lambda url: "/session/end" in url)
    page.click("button[autofocus], button:has-text('Yes')")
    page.wait_for_selector("#sso")
    assert page.evaluate("fetch('/api/conversations').then(r => r.status)") == 401
    # Signing in again finds the same account (no second user).
    again = sign_in_at_provider(browser, platform, "kim.sso")
    assert again.locator("#question").is_visible()
    with platform.db.session() as session:
        assert len(session.scalars(select(User).where(User.name == "kim.sso")).all()) == 1


def test_roles_map_and_existing_accounts_are_linked(sso):
    platform, browser = sso
    boss = sign_in_at_provider(browser, platform, "boss.sso")
    assert boss.locator("a[href='/ops']").count() == 1  # an agency admin, from the provider's ai-admin role
    hong = sign_in_at_provider(browser, platform, "hong")
    assert hong.locator("#question").is_visible()
    with platform.db.session() as session:
        roles = dict(session.execute(select(User.name, User.role)).all())
        hongs = session.scalars(select(User).where(User.name == "hong")).all()
    assert roles["boss.sso"] == "agency_admin" and len(hongs) == 1 and hongs[0].password_hash  # linked, not new
    assert [r.user_name for r in records(platform, "identities.link")] == ["hong"]


def test_a_privileged_account_is_not_linked_by_name_alone(sso):
    """The provider calls someone 'kim.sso' and grants a plain user: an existing agency admin of
    that name is not handed over."""
    platform, browser = sso
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "kim.sso", Role.AGENCY_ADMIN, "correct-horse-7")
    page = sign_in_at_provider(browser, platform, "kim.sso")
    assert "이름만으로" in page.inner_text("#login-error")
    with platform.db.session() as session:
        assert session.scalar(select(UserIdentity)) is None


def test_a_user_of_an_unknown_agency_is_told_why(sso):
    platform, browser = sso
    page = sign_in_at_provider(browser, platform, "nowhere")
    assert "NOPE" in page.inner_text("#login-error") and "등록되어 있지 않습니다" in page.inner_text("#login-error")
    with platform.db.session() as session:
        assert session.scalar(select(User).where(User.name == "nowhere")) is None


def test_a_forged_or_replayed_answer_is_refused(sso):
    platform, _ = sso
    for query in ({"state": "never-issued", "code": "x"}, {"error": "access_denied"}):
        refused = httpx.get(platform.url + "/auth/oidc/callback", params=query, timeout=10)
        assert refused.status_code == 403 and "hanchang_session" not in refused.headers.get("set-cookie", "")
    # A real attempt's state, used once by a code the provider never issued: refused, and used up.
    started = httpx.get(platform.url + "/auth/oidc/login", timeout=10)
    assert started.status_code == 303 and "code_challenge_method=S256" in started.headers["location"]
    state = httpx.URL(started.headers["location"]).params["state"]
    for _ in range(2):
        refused = httpx.get(platform.url + "/auth/oidc/callback", params={"state": state, "code": "forged"},
                            timeout=10)
        assert refused.status_code == 403
    assert "이미 쓰였습니다" in refused.text


def test_without_configuration_there_is_no_sso(platform):
    assert httpx.get(platform.url + "/auth/oidc/login", timeout=10).status_code == 404
    assert 'id="sso"' not in httpx.get(platform.url + "/", timeout=10).text
