"""Changes reach every server process at once on PostgreSQL (NOTIFY in the changing transaction,
LISTEN in each server): two `hanchang serve` processes with caches kept for an hour, so only a
notification can make a revocation or a budget override apply in the process that did not make it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import yaml

from conftest import default_models, serve

CLI = [sys.executable, "-m", "hanchang"]


def wait_for(check, what: str, timeout_s: float = 30.0) -> None:
    """Poll until `check()` holds; the caches last an hour, so only a notification can make it hold."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} did not reach the other process"
        time.sleep(0.1)


def test_a_revocation_and_a_budget_override_apply_in_every_process(tmp_path, database_url, upstream):
    if not database_url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's (set HANCHANG_TEST_DATABASE_URL)")
    config = {"models": default_models(upstream.base_url), "redis_url": "redis://127.0.0.1:6379/0",
              "redis_prefix": f"test-{uuid.uuid4().hex[:8]}", "cache_seconds": 3600,
              "budgets": {"per_agency": {"requests": 1000}}}
    (tmp_path / "hanchang.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANCHANG_", "PROMETHEUS_"))}
    env.update(HANCHANG_HOME=str(tmp_path / "home"), HANCHANG_CONFIG=str(tmp_path / "hanchang.yaml"),
               HANCHANG_DATABASE_URL=database_url)

    def cli(*args: str) -> str:
        return subprocess.run([*CLI, *args], env=env, check=True, capture_output=True, text=True,
                              timeout=120).stdout.strip()
    cli("users", "create", "--user", "kim", "--agency", "DEMO")
    cli("users", "create", "--user", "root", "--agency", "DEMO", "--role", "platform_admin")
    kim, root = cli("keys", "create", "--user", "kim", "--agency", "DEMO"), \
        cli("keys", "create", "--user", "root", "--agency", "DEMO")
    servers, urls = zip(*(serve(env) for _ in range(2)), strict=True)
    try:
        def status(url: str, key: str) -> int:
            return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=15,
                              json={"model": "internal-a", "messages": [{"role": "user", "content": "x"}]}).status_code
        assert [status(url, kim) for url in urls] == [200, 200]  # both processes now hold the key in cache

        # A revocation by another process (the CLI): refused by both servers, an hour before their caches expire.
        cli("keys", "revoke", kim.split("_")[1])
        for url in urls:
            wait_for(lambda url=url: status(url, kim) == 401, "the revocation")

        # A budget override made through one server applies in the other at once.
        assert status(urls[1], root) == 200  # the other server has read the overrides (none yet)
        made = httpx.put(urls[0] + "/api/ops/budgets/agency:DEMO", headers={"Authorization": f"Bearer {root}"},
                         json={"requests": 1, "note": "test"}, timeout=15)
        assert made.status_code == 200, made.text
        wait_for(lambda: status(urls[1], root) == 429, "the budget override")

        # A document uploaded through one server is found through the other as soon as the upload returns
        # (one retrieval index inside PostgreSQL; neither server keeps index files).
        admin = {"Authorization": f"Bearer {root}"}
        made = httpx.post(urls[0] + "/api/collections", headers=admin, json={"name": "청사 안내"}, timeout=15)
        assert made.status_code == 201, made.text
        collection = made.json()["id"]

        def found(url: str, query: str) -> list[str]:
            answer = httpx.get(url + "/api/search", headers=admin, timeout=15,
                               params={"q": query, "collection": str(collection)})
            assert answer.status_code == 200, answer.text
            return [r["source"] for r in answer.json()["results"]]
        assert found(urls[1], "임시 출입증") == []
        notice = "청사 출입 안내\n\n방문객은 임시 출입증을 받습니다.\n".encode()
        uploaded = httpx.post(urls[0] + f"/api/collections/{collection}/documents", headers=admin, timeout=60,
                              files={"files": ("출입.txt", notice)})
        assert uploaded.status_code == 200, uploaded.text
        assert found(urls[1], "임시 출입증") == ["출입.txt"]
        deleted = httpx.delete(urls[1] + f"/api/documents/{uploaded.json()['results'][0]['document_id']}",
                               headers=admin, timeout=15)
        assert deleted.status_code == 204, deleted.text
        assert found(urls[0], "임시 출입증") == []
        assert not (tmp_path / "home" / "indexes").exists()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(15)
