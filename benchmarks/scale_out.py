"""Scale-out: `hanchang serve --workers 1` against `--workers 2` on PostgreSQL and Redis, a fast
upstream, many concurrent chats: requests/s, p50/p99, and whether every answered call left its
usage row and audit record (and `hanchang audit verify` holds). Then one worker is killed
(SIGKILL) mid-run: do the others keep serving, and what became of the records?

    .venv/bin/python benchmarks/scale_out.py [--requests 3000] [--concurrency 500]

Needs the machine's PostgreSQL (HANCHANG_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432)
and Redis (127.0.0.1:6379); each run gets a database of its own (hanchang_bench_*), dropped after.
Writes benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import yaml
from hanchang_devtools.loadgen import run_load
from hanchang_devtools.threaded_server import free_port

from gateway_overhead import start_upstream, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SERVER = os.environ.get("HANCHANG_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
CLI = [sys.executable, "-m", "hanchang"]
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "보도자료 초안을 한 문단으로"}]}).encode()


def admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql)


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchone()[0]


def workers_of(pid: int) -> list[int]:
    """The worker processes uvicorn started under `pid` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in command:
            found.append(int(stat.parent.name))
    return sorted(found)


class Platform:
    """A fresh database and HANCHANG_HOME, a user and key, and `hanchang serve --workers N`."""

    def __init__(self, tmp: Path, upstream_port: int, workers: int):
        self.name = f"hanchang_bench_{uuid.uuid4().hex[:8]}"
        self.url = f"{SERVER}/{self.name}"
        admin(f"CREATE DATABASE {self.name}")
        home = tmp / self.name
        home.mkdir()
        config = {"models": [{"name": "bench", "backend": "openai", "zone": "internal", "max_grade": "C",
                              "base_url": f"http://127.0.0.1:{upstream_port}/v1"}],
                  "redis_url": "redis://127.0.0.1:6379/0", "redis_prefix": self.name, "log_level": "warning",
                  "limits": {"per_key": {"requests_per_minute": 0, "tokens_per_minute": 0},
                             "per_agency": {"requests_per_minute": 0, "tokens_per_minute": 0}}}
        (home / "hanchang.yaml").write_text(yaml.safe_dump(config))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HANCHANG_", "PROMETHEUS_"))},
                    "HANCHANG_HOME": str(home), "HANCHANG_CONFIG": str(home / "hanchang.yaml"),
                    "HANCHANG_DATABASE_URL": self.url}
        subprocess.run([*CLI, "users", "create", "--user", "bench", "--agency", "DEMO"], env=self.env, check=True,
                       capture_output=True)
        self.key = subprocess.run([*CLI, "keys", "create", "--user", "bench", "--agency", "DEMO"], env=self.env,
                                  check=True, capture_output=True, text=True).stdout.strip()
        self.port = free_port()
        self.process = subprocess.Popen([*CLI, "serve", "--workers", str(workers), "--port", str(self.port)],
                                        env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(f"http://127.0.0.1:{self.port}/readyz", timeout_s=120)

    def load(self, total: int, concurrency: int):
        headers = {"Authorization": f"Bearer {self.key}"}
        return asyncio.run(run_load("127.0.0.1", self.port, "/v1/chat/completions", BODY, headers, total,
                                    concurrency))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # workers finish and flush their records
        self.process.wait(timeout=120)

    def records(self) -> dict:
        verified = subprocess.run([*CLI, "audit", "verify"], env=self.env, capture_output=True, text=True)
        return {"usage_rows": count(self.url, "SELECT count(*) FROM usage_records"),
                "ai_audit_records": count(self.url, "SELECT count(*) FROM audit_records WHERE category = 'ai'"),
                "audit_verify_ok": verified.returncode == 0}

    def drop(self) -> None:
        admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def measured(platform: Platform, total: int, concurrency: int, warmup: int = 200) -> dict:
    platform.load(warmup, min(concurrency, 50))
    result = platform.load(total, concurrency)
    platform.stop()
    answered = warmup + total - result.errors
    row = {**result.summary(), "answered_including_warmup": answered, **platform.records()}
    row["lost_usage_rows"] = answered - row["usage_rows"]
    row["lost_audit_records"] = answered - row["ai_audit_records"]
    return row


def killed_mid_run(platform: Platform, total: int, concurrency: int) -> dict:
    """Two workers; one is killed (SIGKILL) a second into the run."""
    workers = workers_of(platform.process.pid)
    killed: list[int] = []

    def kill_one() -> None:
        time.sleep(1.0)
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
    platform.load(50, 10)
    threading.Thread(target=kill_one, daemon=True).start()  # a second into the measured run
    result = platform.load(total, concurrency)
    after = workers_of(platform.process.pid)
    platform.stop()
    answered = 50 + total - result.errors
    row = {**result.summary(), "workers_before": len(workers), "killed": killed, "workers_after": len(after),
           "answered_including_warmup": answered, **platform.records()}
    # Counts, not ids (tests/test_workers.py matches every answered call's id): a call recorded and
    # then cut off with its worker is a usage row no client saw answered.
    row["answered_without_a_usage_row"] = max(0, answered - row["usage_rows"])
    row["recorded_but_cut_off"] = max(0, row["usage_rows"] - answered)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    report: dict = {"requests": args.requests, "concurrency": args.concurrency, "cpus": os.cpu_count(), "runs": {}}
    upstream_port = free_port()
    upstream = start_upstream(upstream_port)
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models")
        with tempfile.TemporaryDirectory() as tmp:
            for label, workers in (("1 worker", 1), ("2 workers", 2)):
                platform = Platform(Path(tmp), upstream_port, workers)
                try:
                    report["runs"][label] = row = measured(platform, args.requests, args.concurrency)
                finally:
                    platform.drop()
                print(f"[{label}] {row['requests_per_s']:.0f} req/s, p50 {row['p50_ms']:.1f} ms, p99 "
                      f"{row['p99_ms']:.1f} ms, errors {row['errors']}, lost usage rows {row['lost_usage_rows']}, "
                      f"lost audit records {row['lost_audit_records']}, audit verify "
                      f"{'ok' if row['audit_verify_ok'] else 'BROKEN'}")
            platform = Platform(Path(tmp), upstream_port, 2)
            try:
                report["runs"]["2 workers, one killed"] = row = killed_mid_run(platform, args.requests,
                                                                                args.concurrency)
            finally:
                platform.drop()
            print(f"[one of 2 workers killed] answered {row['answered_including_warmup']} of "
                  f"{args.requests + 50}, errors {row['errors']}, workers {row['workers_before']} -> "
                  f"{row['workers_after']}, answered without a usage row {row['answered_without_a_usage_row']} "
                  f"(recorded, then cut off with the worker: {row['recorded_but_cut_off']}), "
                  f"audit verify {'ok' if row['audit_verify_ok'] else 'BROKEN'}")
    finally:
        upstream.terminate()
        upstream.wait(15)
    one, two = report["runs"]["1 worker"], report["runs"]["2 workers"]
    report["scaling"] = round(two["requests_per_s"] / one["requests_per_s"], 2)
    print(f"\n2 workers / 1 worker: x{report['scaling']} requests/s on {os.cpu_count()} cores "
          "(the load generator and the upstream share them)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(report, indent=2))
    print(f"written {RESULTS / 'scale_out.json'}")


if __name__ == "__main__":
    main()
