"""Gateway overhead: the same load sent directly to a fast OpenAI-compatible upstream and
through Hanchang, plain and streamed. Prints p50/p95/p99, requests/s and the added latency;
writes benchmarks/results/gateway_overhead.json.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from hanchang_devtools.loadgen import run_load
from hanchang_devtools.threaded_server import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
UPSTREAM_APP = "hanchang_devtools.reference_upstream:bench_app"


def wait_ready(url: str, headers: dict | None = None, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_upstream(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", UPSTREAM_APP, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
    )


def start_hanchang(home: Path, upstream_port: int, port: int) -> tuple[subprocess.Popen, str]:
    config = {
        "models": [{"name": "bench", "backend": "openai", "zone": "internal", "max_grade": "C",
                    "base_url": f"http://127.0.0.1:{upstream_port}/v1"}],
        "limits": {"per_key": {"requests_per_minute": 0, "tokens_per_minute": 0},
                   "per_agency": {"requests_per_minute": 0, "tokens_per_minute": 0}},
        "log_level": "warning",
    }
    (home / "hanchang.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "HANCHANG_HOME": str(home), "HANCHANG_CONFIG": str(home / "hanchang.yaml")}
    hanchang = [sys.executable, "-m", "hanchang"]
    subprocess.run([*hanchang, "users", "create", "--user", "bench", "--agency", "DEMO"], env=env,
                   check=True, capture_output=True)
    key = subprocess.run([*hanchang, "keys", "create", "--user", "bench", "--agency", "DEMO"],
                         env=env, check=True, capture_output=True, text=True).stdout.strip()
    process = subprocess.Popen([*hanchang, "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL)
    return process, key


def measure(port: int, key: str | None, stream: bool, total: int, concurrency: int,
            rate: float | None = None) -> dict:
    question = "보도자료 초안을 한 문단으로 작성해 주세요"
    body = json.dumps({"model": "bench", "stream": stream,
                       "messages": [{"role": "user", "content": question}]})
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    warmup = asyncio.run(run_load("127.0.0.1", port, "/v1/chat/completions", body.encode(), headers,
                                  min(200, total), concurrency))
    if warmup.errors:
        raise RuntimeError(f"warm-up had {warmup.errors} errors")
    result = asyncio.run(run_load("127.0.0.1", port, "/v1/chat/completions", body.encode(), headers,
                                  total, concurrency, rate))
    return result.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0,
                        help="arrival rate (requests/s) of the open-loop run; 0 skips it")
    args = parser.parse_args()

    upstream_port, hanchang_port = free_port(), free_port()
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            processes.append(start_upstream(upstream_port))
            wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models")
            hanchang, key = start_hanchang(Path(tmp), upstream_port, hanchang_port)
            processes.append(hanchang)
            wait_ready(f"http://127.0.0.1:{hanchang_port}/healthz")
            report: dict = {"requests": args.requests, "concurrency": args.concurrency,
                            "cpus": os.cpu_count(), "modes": {}}
            runs = [("plain", False, None), ("streamed", True, None)]
            if args.rate:
                runs += [(f"plain at {args.rate:g}/s", False, args.rate),
                         (f"streamed at {args.rate:g}/s", True, args.rate)]
            for mode, stream, rate in runs:
                direct = measure(upstream_port, None, stream, args.requests, args.concurrency, rate)
                through = measure(hanchang_port, key, stream, args.requests, args.concurrency, rate)
                added = {p: round(through[p] - direct[p], 3) for p in ("p50_ms", "p95_ms", "p99_ms")}
                report["modes"][mode] = {"direct": direct, "through_hanchang": through,
                                         "added_ms": added, "arrival_rate": rate}
                loop = f"open loop, {rate:g} requests/s offered" if rate else "closed loop"
                print(f"\n[{mode}] {args.requests} requests, {args.concurrency} connections, {loop}")
                print(f"{'':18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}")
                for label, row in (("direct", direct), ("through Hanchang", through)):
                    print(f"{label:18}{row['p50_ms']:9.2f}{row['p95_ms']:9.2f}{row['p99_ms']:9.2f}"
                          f"{row['requests_per_s']:9.0f}{row['errors']:8d}")
                print(f"{'added':18}" + "".join(f"{added[p]:9.2f}" for p in ("p50_ms", "p95_ms", "p99_ms")))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=15)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_overhead.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten {RESULTS / 'gateway_overhead.json'}")


if __name__ == "__main__":
    main()
