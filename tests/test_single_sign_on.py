"""Single sign-on in a real browser through a real OpenID provider: the certified `oidc-provider`
package (devtools/oidc_provider, Node.js) signs civil servants in; Hanchang maps their claims to
an agency and a role, creates or links their account, and logs them out at the provider too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urljoin

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
def sso(platform_factory, upstream, monkeypatch, request):
    assert (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(), "run ./scripts/install dev (npm ci)"
    monkeypatch.setenv("HANCHANG_OIDC_CLIENT_SECRET", SECRET)
    port = free_port()
    extra = request.node.get_closest_marker("oidc")
    platform = platform_factory({"models": default_models(upstream.base_url), "oidc": {
        "issuer": f"http://127.0.0.1:{port}", "client_id": "hanchang",
        "scopes": ["openid", "profile", "email", "agency"], "role_map": {"ai-admin": "agency_admin"},
        **(extra.kwargs if extra else {})}})
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


def sign_in_at_provider(browser, platform, account: str, context=None):
    page = (context or browser.new_context()).new_page()
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


@pytest.mark.oidc(link_by_username=True)
def test_roles_map_and_existing_accounts_are_linked(sso):
    """Where an administrator allows it, a verified person's first sign-in links the account of
    their name; an unverified one does not."""
    platform, browser = sso
    boss = sign_in_at_provider(browser, platform, "boss.sso")
    assert boss.locator("a[href='/ops']").count() == 1  # an agency admin, from the provider's ai-admin role
    unverified = sign_in_at_provider(browser, platform, "hong.unverified")
    assert "자동으로 연결하지 않았습니다" in unverified.inner_text("#login-error")
    hong = sign_in_at_provider(browser, platform, "hong")
    assert hong.locator("#question").is_visible()
    with platform.db.session() as session:
        roles = dict(session.execute(select(User.name, User.role)).all())
        hongs = session.scalars(select(User).where(User.name == "hong")).all()
    assert roles["boss.sso"] == "agency_admin" and len(hongs) == 1 and hongs[0].password_hash  # linked, not new
    assert [r.user_name for r in records(platform, "identities.link")] == ["hong"]


def test_an_existing_account_is_not_linked_by_name_unless_an_administrator_allows_it(sso):
    platform, browser = sso
    page = sign_in_at_provider(browser, platform, "hong")
    assert "관리자에게 계정 연결을 요청하세요" in page.inner_text("#login-error")
    with platform.db.session() as session:
        assert session.scalar(select(UserIdentity)) is None
        assert len(session.scalars(select(User).where(User.name == "hong")).all()) == 1


@pytest.mark.parametrize("allowed", [False, True])
def test_a_second_subject_with_a_linked_users_name_gets_nothing(sso, allowed):
    """Account takeover: another person at the provider calls themselves kim.sso. Accounts are
    found by (issuer, subject); the name never hands over kim.sso's account, even where
    administrators allowed linking by name (it is linked at this provider already)."""
    platform, browser = sso
    platform.settings.oidc.link_by_username = allowed
    kim = sign_in_at_provider(browser, platform, "kim.sso")
    assert kim.locator("#question").is_visible()
    impostor = sign_in_at_provider(browser, platform, "kim.other")
    assert impostor.locator("#question").count() == 0
    assert "kim.sso" in impostor.inner_text("#login-error")
    assert impostor.evaluate("fetch('/api/conversations').then(r => r.status)") == 401
    with platform.db.session() as session:
        identities = session.execute(select(UserIdentity.subject, UserIdentity.user_id)).all()
    assert [subject for subject, _ in identities] == ["kim.sso"]


def test_a_login_started_in_one_browser_cannot_be_finished_in_another(sso):
    """Login CSRF: the attacker signs in at the provider as themselves and sends the victim the
    callback address; the victim's browser did not start that sign-in, so it is refused (and the
    attacker's own browser could still use it: nothing was spent)."""
    platform, browser = sso
    attacker = browser.new_context()
    captured: list[str] = []

    def hold(route):  # the provider's redirects followed here, up to the one back to Hanchang: held
        answer = route.fetch(max_redirects=0)
        location = answer.headers.get("location", "")
        while location and "/auth/oidc/callback" not in location:
            answer = attacker.request.get(urljoin(route.request.url, location), max_redirects=0)
            location = answer.headers.get("location", "")
        if location:
            captured.append(location)
            route.fulfill(status=200, body="held")
        else:
            route.fulfill(response=answer)
    provider = re.compile(re.escape(platform.settings.oidc.issuer) + ".*")
    attacker.route(provider, hold)
    page = attacker.new_page()
    page.set_default_timeout(20_000)
    page.goto(platform.url + "/")
    page.click("#sso")
    page.fill("input[name=login]", "kim.sso")
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_selector("button[type=submit]:has-text('Continue')")
    page.click("button[type=submit]:has-text('Continue')")
    for _ in range(100):
        if captured:
            break
        page.wait_for_timeout(100)
    callback = captured[0]
    victim = browser.new_context().new_page()
    answer = victim.goto(callback)
    assert answer.status == 403 and "이 브라우저에서 시작한 로그인이 아닙니다" in victim.inner_text("#login-error")
    assert not any(c["name"] == "hanchang_session" for c in victim.context.cookies())
    assert httpx.get(callback, timeout=10).status_code == 403  # no cookie at all: refused too
    attacker.unroute(provider)
    page.goto(callback)
    page.wait_for_selector("#question")  # the browser that started it finishes it


@pytest.mark.oidc(link_by_username=True)
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
    browser = httpx.Client(timeout=10)
    started = browser.get(platform.url + "/auth/oidc/login")
    assert started.status_code == 303 and "code_challenge_method=S256" in started.headers["location"]
    binding = started.headers["set-cookie"]
    assert "hanchang_sso=" in binding and "HttpOnly" in binding and "SameSite=lax" in binding
    state = httpx.URL(started.headers["location"]).params["state"]
    for _ in range(2):
        refused = browser.get(platform.url + "/auth/oidc/callback", params={"state": state, "code": "forged"})
        assert refused.status_code == 403
    assert "이미 쓰였습니다" in refused.text


def test_without_configuration_there_is_no_sso(platform):
    assert httpx.get(platform.url + "/auth/oidc/login", timeout=10).status_code == 404
    assert 'id="sso"' not in httpx.get(platform.url + "/", timeout=10).text


def test_behind_https_the_binding_is_a_host_only_cookie(sso):
    """A sibling subdomain cannot toss a binding cookie of its own into the victim's browser."""
    platform, _ = sso
    platform.settings.cookie_secure = True
    started = httpx.get(platform.url + "/auth/oidc/login", timeout=10)
    cookie = started.headers["set-cookie"]
    assert cookie.startswith("__Host-hanchang_sso=") and "Secure" in cookie and "Path=/;" in cookie
    state = httpx.URL(started.headers["location"]).params["state"]
    tossed = httpx.get(platform.url + "/auth/oidc/callback", params={"state": state, "code": "x"}, timeout=10,
                       headers={"cookie": "hanchang_sso=" + cookie.split("=", 1)[1].split(";")[0]})
    assert tossed.status_code == 403 and "이 브라우저에서 시작한 로그인이 아닙니다" in tossed.text
