"""Window sessions over HTTP: cookies, CSRF, lockout, sign-out, and who sees which conversation."""

from __future__ import annotations

import re
import time

import httpx
from sqlalchemy import text

from hanchang.core.principal import Role
from hanchang.store import accounts

PASSWORD = "correct-horse-7"


def add_user(platform, name, role=Role.USER):
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", name, role, PASSWORD)


def sign_in(platform, name, password=PASSWORD) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=platform.url, timeout=15)
    response = client.post("/auth/login", data={"agency": "MOIS", "user": name, "password": password})
    page = client.get("/").text
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    return client, (match.group(1) if match else "") if response.status_code == 303 else ""


def test_session_cookie_is_http_only_and_csrf_is_required(platform):
    add_user(platform, "hong")
    client = httpx.Client(base_url=platform.url, timeout=15)
    response = client.post("/auth/login", data={"agency": "MOIS", "user": "hong", "password": PASSWORD})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    assert client.get("/api/conversations").status_code == 200
    refused = client.post("/api/conversations")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    assert client.post("/api/conversations", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).status_code == 201
    # Signing out ends the session for good.
    assert client.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    client.cookies.set("hanchang_session", response.cookies["hanchang_session"])
    assert client.get("/api/conversations").status_code == 401
    assert 'id="password"' in client.get("/").text


def test_lockout_after_repeated_failures(platform):
    add_user(platform, "hong")
    client = httpx.Client(base_url=platform.url, timeout=15)
    for _ in range(5):
        failed = client.post("/auth/login", data={"agency": "MOIS", "user": "hong", "password": "nope-nope"})
        assert failed.status_code == 401 and "암호가 맞지 않습니다" in failed.text
    locked = client.post("/auth/login", data={"agency": "MOIS", "user": "hong", "password": PASSWORD})
    assert locked.status_code == 423 and "잠겼습니다" in locked.text
    # Unknown names lock the same way, so names cannot be probed.
    for _ in range(5):
        client.post("/auth/login", data={"agency": "MOIS", "user": "ghost", "password": "x"})
    assert client.post("/auth/login", data={"agency": "MOIS", "user": "ghost",
                                            "password": "x"}).status_code == 423


def test_conversations_are_private(platform):
    add_user(platform, "hong")
    add_user(platform, "lee")
    hong, hong_csrf = sign_in(platform, "hong")
    lee, lee_csrf = sign_in(platform, "lee")
    created = hong.post("/api/conversations", headers={"X-CSRF-Token": hong_csrf}).json()
    assert lee.get(f"/api/conversations/{created['id']}/messages").status_code == 404
    assert lee.delete(f"/api/conversations/{created['id']}", headers={"X-CSRF-Token": lee_csrf}).status_code == 404
    assert lee.get("/api/conversations").json()["data"] == []


def test_a_failed_model_call_keeps_the_question(platform, upstream):
    add_user(platform, "hong")
    client, csrf = sign_in(platform, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    upstream.server.stop()
    stream = client.post(f"/api/conversations/{conversation}/messages", headers={"X-CSRF-Token": csrf},
                         json={"content": "연가 규정 알려줘", "model": "internal-a"})
    assert "event: failed" in stream.text
    messages = client.get(f"/api/conversations/{conversation}/messages").json()["data"]
    assert [(m["role"], m["content"][:9]) for m in messages] == [
        ("user", "연가 규정 알려줘"), ("notice", "모델이 지금 응답")]


def test_admins_create_users_in_their_agency(platform):
    add_user(platform, "boss", Role.AGENCY_ADMIN)
    add_user(platform, "hong")
    boss, boss_csrf = sign_in(platform, "boss")
    made = boss.post("/api/users", headers={"X-CSRF-Token": boss_csrf},
                     json={"user": "new", "password": "long-enough-1", "role": "user"})
    assert made.status_code == 201 and made.json() == {"agency": "MOIS", "user": "new", "role": "user"}
    assert boss.post("/api/users", headers={"X-CSRF-Token": boss_csrf},
                     json={"user": "x", "password": "long-enough-1", "role": "platform_admin"}).status_code == 403
    hong, hong_csrf = sign_in(platform, "hong")
    assert hong.post("/api/users", headers={"X-CSRF-Token": hong_csrf},
                     json={"user": "y", "password": "long-enough-1"}).status_code == 403
    assert sign_in(platform, "new", "long-enough-1")[1]  # the new user can sign in


def test_pressing_stop_keeps_the_partial_answer_and_is_recorded(platform, upstream):
    add_user(platform, "hong")
    client, csrf = sign_in(platform, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    upstream.behaviour.chunk_delay_s = 0.2
    with client.stream("POST", f"/api/conversations/{conversation}/messages", headers={"X-CSRF-Token": csrf},
                       json={"content": " ".join(["단어"] * 40), "model": "internal-a"}) as response:
        for line in response.iter_lines():
            if line.startswith("event: delta"):
                break  # the first words arrived: press stop
    (row,) = platform.usage_rows(timeout_s=10)
    assert row.status == 499 and row.error_code == "client_closed"
    for _ in range(50):  # the partial answer is saved as the stream unwinds
        messages = client.get(f"/api/conversations/{conversation}/messages").json()["data"]
        if len(messages) == 2:
            break
        time.sleep(0.1)
    assert messages[-1]["role"] == "assistant" and messages[-1]["meta"]["stopped"] is True


def test_parallel_wrong_passwords_lock_the_account_without_errors(platform):
    from concurrent.futures import ThreadPoolExecutor

    add_user(platform, "target")

    def guess(n: int) -> int:
        return httpx.post(platform.url + "/auth/login", timeout=60,
                          data={"agency": "MOIS", "user": "target", "password": f"wrong-{n}"}).status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(guess, range(30)))
    assert set(statuses) <= {401, 423} and statuses.count(401) >= 5, statuses
    right = httpx.post(platform.url + "/auth/login", data={"agency": "MOIS", "user": "target", "password": PASSWORD},
                       timeout=30)
    assert right.status_code == 423  # locked: the right password does not get in now
    with platform.db.session() as session:  # attempted names are not kept in clear
        names = [r[0] for r in session.execute(text("select user_name from login_failures"))]
    assert names and "target" not in names


def test_unknown_and_known_names_take_the_same_time(platform):
    add_user(platform, "known")

    def seconds(user: str) -> float:
        started = time.perf_counter()
        httpx.post(platform.url + "/auth/login", data={"agency": "MOIS", "user": user, "password": "wrong-pass"},
                   timeout=30)
        return time.perf_counter() - started

    for name in ("known", "nobody"):  # warm up both paths
        seconds(name)
    known = sorted(seconds("known") for _ in range(3))[1]
    unknown = sorted(seconds(f"nobody{i}") for i in range(3))[1]
    assert unknown > 0.4 * known, (known, unknown)  # was 36 ms against 246 ms: names could be probed


def test_sign_in_from_another_site_is_refused(platform):
    add_user(platform, "hong")
    response = httpx.post(platform.url + "/auth/login", headers={"Origin": "https://evil.example"}, timeout=15,
                          data={"agency": "MOIS", "user": "hong", "password": PASSWORD})
    assert response.status_code == 403 and "hanchang_session" not in response.headers.get("set-cookie", "")
