"""Gateway overhead: the same load sent directly to a fast OpenAI-compatible upstream and
through Hanchang, plain and streamed. Prints p50/p95/p99, requests/s and the added latency;
writes benchmarks/results/gateway_overhead.json.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 2000] [--concurrency 64]
    .venv/bin/python benchmarks/gateway_overhead.py --baseline REV   # before/after in one run
    .venv/bin/python benchmarks/gateway_overhead.py --baseline REV --instructions --requests 300

With --baseline, a second Hanchang runs the source of git revision REV (a temporary worktree)
beside this one, and both take the same load in turns: the report adds each server's CPU time
per request (user + system, from /proc) and the difference, so a change's cost is measured on
one machine at one time. This tree's server runs with budgets configured (so the budget path
runs on every request) and, like every `hanchang serve`, with Prometheus metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


def start_hanchang(home: Path, upstream_port: int, port: int, source: Path | None = None,
                   extra: dict | None = None, prefix: list[str] = ()) -> tuple[subprocess.Popen, str]:
    config = {
        "models": [{"name": "bench", "backend": "openai", "zone": "internal", "max_grade": "C",
                    "base_url": f"http://127.0.0.1:{upstream_port}/v1"}],
        "limits": {"per_key": {"requests_per_minute": 0, "tokens_per_minute": 0},
                   "per_agency": {"requests_per_minute": 0, "tokens_per_minute": 0}},
        "log_level": "warning",
        **(extra or {}),
    }
    (home / "hanchang.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "HANCHANG_HOME": str(home), "HANCHANG_CONFIG": str(home / "hanchang.yaml")}
    if source is not None:  # another revision's code, with this environment's packages
        env["PYTHONPATH"] = str(source / "src")
    hanchang = [sys.executable, "-m", "hanchang"]
    subprocess.run([*hanchang, "users", "create", "--user", "bench", "--agency", "DEMO"], env=env,
                   check=True, capture_output=True)
    key = subprocess.run([*hanchang, "keys", "create", "--user", "bench", "--agency", "DEMO"],
                         env=env, check=True, capture_output=True, text=True).stdout.strip()
    process = subprocess.Popen([*prefix, *hanchang, "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if prefix else None)
    return process, key


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, key: str | None, stream: bool, total: int, concurrency: int,
            rate: float | None = None, pid: int | None = None) -> dict:
    question = "보도자료 초안을 한 문단으로 작성해 주세요"
    body = json.dumps({"model": "bench", "stream": stream,
                       "messages": [{"role": "user", "content": question}]})
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    warmup = asyncio.run(run_load("127.0.0.1", port, "/v1/chat/completions", body.encode(), headers,
                                  min(200, total), concurrency))
    if warmup.errors:
        raise RuntimeError(f"warm-up had {warmup.errors} errors")
    before = cpu_seconds(pid) if pid else 0.0
    result = asyncio.run(run_load("127.0.0.1", port, "/v1/chat/completions", body.encode(), headers,
                                  total, concurrency, rate))
    summary = result.summary()
    if pid:
        summary["server_cpu_ms_per_request"] = round((cpu_seconds(pid) - before) * 1000 / total, 4)
    return summary


def callgrind(pid: int, *args: str) -> None:
    done = subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, text=True)
    if "OK" not in done.stdout:  # it exits 0 even when it found no such run
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid}: {done.stdout}{done.stderr}")


def instructions_per_request(port: int, key: str, pid: int, out_dir: Path, stream: bool, total: int) -> float:
    """Instructions the server executes per request (valgrind's callgrind; one request at a time)."""
    question = "보도자료 초안을 한 문단으로 작성해 주세요"
    body = json.dumps({"model": "bench", "stream": stream,
                       "messages": [{"role": "user", "content": question}]}).encode()
    headers = {"Authorization": f"Bearer {key}"}
    path = "/v1/chat/completions"
    asyncio.run(run_load("127.0.0.1", port, path, body, headers, 30, 1))  # warm: caches, lazily made metrics
    before = set(out_dir.glob(f"cg.{pid}.*"))
    callgrind(pid, "-z")
    callgrind(pid, "-i", "on")
    result = asyncio.run(run_load("127.0.0.1", port, path, body, headers, total, 1))
    callgrind(pid, "-i", "off")
    callgrind(pid, "-d")
    if result.errors:
        raise RuntimeError(f"{result.errors} errors under callgrind")
    deadline = time.monotonic() + 60
    while not (dumps := set(out_dir.glob(f"cg.{pid}.*")) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    text = max(dumps, key=lambda p: p.stat().st_mtime).read_text(errors="replace")
    totals = [int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:")]
    if not totals or not totals[0]:
        raise RuntimeError(f"callgrind counted nothing for process {pid}")
    return totals[0] / total


@contextlib.contextmanager
def before_and_after(baseline: str, tmp: Path, prefix: list[str] = (),
                     ready_s: float = 60) -> Iterator[dict[str, tuple[int, str, int]]]:
    """A fast upstream, and two Hanchang servers in front of it: revision `baseline` (a temporary
    worktree) as "before", this tree with budgets and prices as "after" — each (port, key, pid)."""
    upstream_port = free_port()
    worktree = tmp / "baseline"
    processes = []
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), baseline],
                   check=True, capture_output=True)
    try:
        processes.append(start_upstream(upstream_port))
        wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models")
        servers = {}
        for label, source, extra in (("before", worktree, None), ("after", None, budgeted_config(upstream_port))):
            home, port = tmp / label, free_port()
            home.mkdir()
            process, key = start_hanchang(home, upstream_port, port, source, extra, prefix)
            processes.append(process)
            wait_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=ready_s)
            servers[label] = (port, key, process.pid)
        yield servers
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)


def budgeted_config(upstream_port: int) -> dict:
    """This tree's server config: budgets on every request, models priced (so costs are computed)."""
    return {"budgets": {"per_agency": {"requests": 10**9, "tokens": 10**12, "won": 10**9}},
            "models": [{"name": "bench", "backend": "openai", "zone": "internal", "max_grade": "C",
                        "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                        "price": {"input_per_1k_tokens": 1.0, "output_per_1k_tokens": 3.0}}]}


def compare_instructions(baseline: str, args) -> None:
    """This tree against `baseline` in instructions per request, counted by callgrind: the same
    figure on every run, whatever else the machine is doing (CPU time per request is not)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "callgrind"
        out_dir.mkdir()
        prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p"]
        with before_and_after(baseline, Path(tmp), prefix, ready_s=900) as servers:
            report: dict = {"baseline": baseline, "requests": args.requests, "method": "callgrind", "modes": {}}
            for mode, stream in (("plain", False), ("streamed", True)):
                row = {label: round(instructions_per_request(port, key, pid, out_dir, stream, args.requests))
                       for label, (port, key, pid) in servers.items()}
                row["added_instructions"] = row["after"] - row["before"]
                row["ratio"] = round(row["after"] / row["before"], 4)
                report["modes"][mode] = row
                print(f"[{mode}] instructions per request: before {row['before']:,}  after {row['after']:,}  "
                      f"added {row['added_instructions']:+,} (x{row['ratio']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_overhead_instructions.json").write_text(json.dumps(report, indent=2))
    print(f"written {RESULTS / 'gateway_overhead_instructions.json'}")


def compare(baseline: str, args) -> None:
    """This tree against revision `baseline`, the same load in turns: CPU per request and latency."""
    with tempfile.TemporaryDirectory() as tmp, before_and_after(baseline, Path(tmp)) as servers:
        report: dict = {"baseline": baseline, "requests": args.requests, "concurrency": args.concurrency,
                        "rounds": args.rounds, "modes": {}}
        for mode, stream in (("plain", False), ("streamed", True)):
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.rounds):  # in turns, so drift on the machine hits both alike
                for label, (port, key, pid) in servers.items():
                    runs[label].append(measure(port, key, stream, args.requests, args.concurrency, pid=pid))
            row = {}
            for label, found in runs.items():
                cpu = sorted(r["server_cpu_ms_per_request"] for r in found)
                row[label] = {"cpu_ms_per_request": cpu[len(cpu) // 2], "cpu_runs": cpu,
                              "p50_ms": sorted(r["p50_ms"] for r in found)[len(found) // 2],
                              "requests_per_s": sorted(r["requests_per_s"] for r in found)[len(found) // 2]}
            row["added_cpu_ms_per_request"] = round(row["after"]["cpu_ms_per_request"]
                                                    - row["before"]["cpu_ms_per_request"], 4)
            row["cpu_ratio"] = round(row["after"]["cpu_ms_per_request"] / row["before"]["cpu_ms_per_request"], 3)
            report["modes"][mode] = row
            print(f"\n[{mode}] {args.rounds} rounds of {args.requests} requests, before = {baseline}")
            print(f"{'':8}{'CPU ms/req':>12}{'p50 ms':>9}{'req/s':>9}")
            for label in ("before", "after"):
                r = row[label]
                print(f"{label:8}{r['cpu_ms_per_request']:12.4f}{r['p50_ms']:9.2f}{r['requests_per_s']:9.0f}")
            print(f"added CPU per request: {row['added_cpu_ms_per_request']:+.4f} ms  (x{row['cpu_ratio']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_overhead_compare.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten {RESULTS / 'gateway_overhead_compare.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0,
                        help="arrival rate (requests/s) of the open-loop run; 0 skips it")
    parser.add_argument("--baseline", help="git revision to compare this tree with (CPU per request)")
    parser.add_argument("--rounds", type=int, default=3, help="turns per server with --baseline")
    parser.add_argument("--instructions", action="store_true",
                        help="with --baseline: count instructions per request under valgrind's callgrind "
                             "(repeatable on a busy machine) instead of CPU time")
    args = parser.parse_args()
    if args.baseline and args.instructions:
        compare_instructions(args.baseline, args)
        return
    if args.baseline:
        compare(args.baseline, args)
        return

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
