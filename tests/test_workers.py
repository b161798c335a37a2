"""`hanchang serve --workers N`: unsafe multi-worker configurations are refused with the reason;
two real worker processes on PostgreSQL and Redis answer every request, record every call once
and keep the audit chain whole."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from hanchang_devtools.threaded_server import free_port
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from conftest import default_models, serve, start_upstream
from hanchang.cli import app as cli
from hanchang.store.db import normalise_url
from hanchang.store.tables import AuditRecord, UsageRecord

REDIS_URL = "redis://127.0.0.1:6379/0"
CLI = [sys.executable, "-m", "hanchang"]


def environment(tmp_path: Path, config: dict, database_url: str | None = None) -> dict[str, str]:
    (tmp_path / "hanchang.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANCHANG_", "PROMETHEUS_"))}
    env.update(HANCHANG_HOME=str(tmp_path / "home"), HANCHANG_CONFIG=str(tmp_path / "hanchang.yaml"),
               HANCHANG_SHARED=os.environ.get("HANCHANG_SHARED", ""))
    if database_url:
        env["HANCHANG_DATABASE_URL"] = database_url
    return env


@pytest.mark.parametrize("case", ["sqlite", "no redis", "embedded model"])
def test_unsafe_worker_configurations_are_refused_with_the_reason(tmp_path, upstream, case):
    models = default_models(upstream.base_url)
    config = {"models": models, "redis_url": REDIS_URL}
    database = "postgresql://postgres@127.0.0.1:5432/test"
    if case == "sqlite":
        database = None
    elif case == "no redis":
        config.pop("redis_url")
    else:
        config["models"] = [*models, {"name": "local", "backend": "llamacpp", "path": str(tmp_path / "m.gguf"),
                                      "zone": "internal", "max_grade": "C"}]
    done = subprocess.run([*CLI, "serve", "--workers", "2", "--port", str(free_port())],
                          env=environment(tmp_path, config, database), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    reason = {"sqlite": "PostgreSQL", "no redis": "redis_url", "embedded model": "--workers 1"}[case]
    assert "Cannot serve with 2 workers" in done.stderr and reason in done.stderr, done.stderr


def worker_pids(parent: int) -> list[int]:
    """The uvicorn workers under `parent` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == parent and b"resource_tracker" not in command:
            found.append(int(stat.parent.name))
    return sorted(found)


def test_two_workers_share_postgresql_and_redis(tmp_path, database_url, upstream):
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL (set HANCHANG_TEST_DATABASE_URL)")
    config = {"models": default_models(upstream.base_url), "redis_url": REDIS_URL,
              "redis_prefix": f"test-{uuid.uuid4().hex[:8]}", "limits": {"per_key": {"requests_per_minute": 0}}}
    env = environment(tmp_path, config, database_url)
    for command in (["users", "create", "--user", "kim", "--agency", "DEMO"],):
        subprocess.run([*CLI, *command], env=env, check=True, capture_output=True, timeout=120)
    key = subprocess.run([*CLI, "keys", "create", "--user", "kim", "--agency", "DEMO"], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.strip()
    env["HANCHANG_METRICS_TOKEN"] = "scrape-token"
    server, url = serve(env, "--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    try:
        def ask(i: int) -> int:
            return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                              json={"model": "internal-a", "messages": [{"role": "user", "content": f"질문 {i}"}],
                                    "stream": i % 2 == 0}).status_code
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(ask, range(80)))
        assert statuses == [200] * 80
        # Both workers answered: each writes Prometheus samples under its own process id.
        time.sleep(1.5)
        samples = tmp_path / "home" / "run" / f"metrics-{port}"
        assert len({p.stem.rsplit("_", 1)[1] for p in samples.glob("counter_*.db")}) == 2
        # The workers' sums, and the answering process's own figures and the build, as one process shows.
        scraped = httpx.get(url + "/metrics", headers={"Authorization": "Bearer scrape-token"}, timeout=10).text
        for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
                       "hanchang_build_info{", "hanchang_requests_total"):
            assert family in scraped, family
    finally:
        server.terminate()
        server.wait(30)
    # Every call recorded once, and the audit chain whole, after both workers flushed and stopped.
    runner = CliRunner()
    os.environ.update({k: env[k] for k in ("HANCHANG_HOME", "HANCHANG_CONFIG", "HANCHANG_DATABASE_URL")})
    try:
        usage = runner.invoke(cli, ["usage", "--since", "1h", "--by", "user"])
        assert usage.exit_code == 0 and " 80 " in usage.stdout.replace("│", " "), usage.stdout
        verified = runner.invoke(cli, ["audit", "verify"])
        assert verified.exit_code == 0, verified.stdout
    finally:
        for name in ("HANCHANG_HOME", "HANCHANG_CONFIG", "HANCHANG_DATABASE_URL"):
            os.environ.pop(name, None)


def test_a_killed_worker_leaves_no_answered_call_unrecorded(tmp_path, database_url):
    """SIGKILL one of two workers while 24 clients ask: every call that was answered (a JSON body,
    or a stream through [DONE]) has its usage row and audit record; the other worker keeps serving."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL (set HANCHANG_TEST_DATABASE_URL)")
    upstream = start_upstream(delay_s=0.05, chunk_delay_s=0.01)
    config = {"models": default_models(upstream.base_url), "redis_url": REDIS_URL,
              "redis_prefix": f"test-{uuid.uuid4().hex[:8]}", "limits": {"per_key": {"requests_per_minute": 0}}}
    env = environment(tmp_path, config, database_url)
    subprocess.run([*CLI, "users", "create", "--user", "kim", "--agency", "DEMO"], env=env, check=True,
                   capture_output=True, timeout=120)
    key = subprocess.run([*CLI, "keys", "create", "--user", "kim", "--agency", "DEMO"], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.strip()
    server, url = serve(env, "--workers", "2")
    answered: list[str] = []
    failed = 0

    def ask(i: int) -> None:
        nonlocal failed
        body = {"model": "internal-a", "messages": [{"role": "user", "content": f"질문 {i}"}], "stream": i % 2 == 0}
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"}) as response:
                text = "".join(response.iter_text())
                complete = response.status_code == 200 and ("[DONE]" in text if body["stream"] else
                                                            '"choices"' in text)
                if complete:
                    answered.append(response.headers["x-request-id"])
                    return
        except httpx.HTTPError:
            pass
        failed += 1

    try:
        workers = worker_pids(server.pid)
        assert len(workers) == 2
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(ask, i) for i in range(600)]
            while len(answered) < 100:
                time.sleep(0.02)
            os.kill(workers[0], signal.SIGKILL)
            for future in futures:
                future.result()
        assert len(answered) > 300 and failed < 300  # the other worker kept serving
    finally:
        server.terminate()
        server.wait(30)
        upstream.server.stop()
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            usage = set(connection.execute(select(UsageRecord.request_id)).scalars())
            audit = set(connection.execute(select(AuditRecord.request_id)
                                           .where(AuditRecord.category == "ai")).scalars())
    finally:
        engine.dispose()
    assert set(answered) <= usage
    assert set(answered) <= audit
