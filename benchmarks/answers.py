"""Answer quality of the embedded default, quiet and busy, scored by the evaluation harness.

Sets up a fresh HANCHANG_HOME as a user would (`hanchang setup`: sample corpus, first admin),
starts `hanchang serve`, and asks each question of a set grounded on the `sample` collection
through /v1/chat/completions, as a client would; then again with two CPU-bound processes
beside the server (a busy machine). Every answer is scored with the harness's own scorers
(hanchang.evals): key fact (as shown, and in the model's own words without the platform's
quote), `[n]` rate, citation support, invented numbers; p50/p90 latency from the client.

With `--baseline COMMIT`, the same questions go to a server run from that commit's source
(a git worktree on the same Python environment, its own fresh home), scored the same way, in
the same run — so the figures compare like with like. Sets: the shipped `sample-dev` (answers
were tuned on it), `sample-holdout` (never tuned on) and `seed` (../shared/bench's seed
questions, written by others). Writes benchmarks/results/answers.json.

    .venv/bin/python benchmarks/answers.py [--sets sample-holdout,seed] [--baseline 5e74ebf] [--quiet-only]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hanchang.evals import datasets, scorers
from hanchang.evals.datasets import Item

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HANCHANG_SHARED") or ROOT.parent / "shared")
HANCHANG = str(Path(sys.executable).with_name("hanchang"))
README_QUESTION = Item("readme", "데이터 보안 등급 세 가지는?", [["기밀"], ["민감"], ["공개"]])  # the README's own
CRITERIA = [{"type": "key_fact", "name": "key_fact"}, {"type": "key_fact", "name": "key_fact_reply", "scope": "reply"},
            {"type": "citation_support", "name": "citation_support"},
            {"type": "number_faithfulness", "name": "number_faithfulness"}]


def load_set(name: str) -> list[Item]:
    if name == "seed":
        rows = [json.loads(line) for line in (SHARED / "bench" / "seed_qa_dev.jsonl").read_text("utf-8").splitlines()
                if line.strip()]
        return [Item(f"seed{n:02d}", row["q"], [[row["must"]]]) for n, row in enumerate(rows, 1)]
    return datasets.shipped(name)


def burn() -> None:
    while True:
        pass


class Server:
    """`hanchang serve` on a fresh home, from this checkout or from another source tree."""

    def __init__(self, port: int, source: Path | None):
        self.home = Path(tempfile.mkdtemp(prefix="hanchang-answers-"))
        self.env = {**os.environ, "HANCHANG_HOME": str(self.home)}
        self.env.pop("HANCHANG_CONFIG", None)
        if source is not None:  # run the other commit's code on this environment's libraries
            self.env["PYTHONPATH"] = str(source / "src")
        subprocess.run([HANCHANG, "setup"], env=self.env, check=True, capture_output=True)
        credentials = (self.home / "initial-credentials.txt").read_text().splitlines()
        self.key = dict(line.split("=", 1) for line in credentials if "=" in line)["api_key"]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([HANCHANG, "serve", "--port", str(port)], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while True:
            try:
                report = httpx.get(self.url + "/readyz", timeout=5).json()
                if all(m["state"] == "ready" for m in report["models"]):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)

    def ask(self, item: Item) -> dict:
        body = {"model": "local", "messages": [{"role": "user", "content": item.question}],
                "collections": ["sample"]}
        started = time.perf_counter()
        response = httpx.post(self.url + "/v1/chat/completions", json=body, timeout=600,
                              headers={"Authorization": f"Bearer {self.key}"})
        latency = time.perf_counter() - started
        if response.status_code != 200:
            return {"output_text": "", "latency_s": latency, "error": {"status": response.status_code,
                                                                       "message": response.text[:300]}}
        result = response.json()
        return {"output_text": result["choices"][0]["message"]["content"] or "", "latency_s": latency,
                "citations": result.get("citations") or [], "usage": result.get("usage") or {},
                "answer_check": (result.get("hanchang") or {}).get("answer_check"), "error": None}

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def score(item: Item, sample: dict) -> dict:
    results = await scorers.score(item, sample, scorers.check_criteria(CRITERIA), {})
    return {r.name: r.passed for r in results}


def measure(server: Server, items: list[Item], busy: bool) -> dict:
    import asyncio

    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(2 if busy else 0)]
    for burner in burners:
        burner.start()
    rows = []
    try:
        for item in [README_QUESTION, *items]:
            sample = server.ask(item)
            passed = asyncio.run(score(item, sample))
            rows.append({"id": item.id, "latency_s": round(sample["latency_s"], 2), "passed": passed,
                         "cited": "[" in sample["output_text"] and any(
                             f"[{c['index']}]" in sample["output_text"] for c in sample.get("citations") or ()),
                         "answer": sample["output_text"][:400]})
            mark = "".join("✓" if v else "✗" if v is False else "-" for v in passed.values())
            print(f"  {mark} {sample['latency_s']:5.1f} s  {item.id}  {item.question}", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
    readme, rows = rows[0], rows[1:]
    return {"summary": {**summarise(rows, items), "readme_question": {
        "right": bool(readme["passed"]["key_fact"]), "cited": readme["cited"], "latency_s": readme["latency_s"],
        "answer": readme["answer"]}}, "items": rows}


def rate(rows: list[dict], name: str) -> float | None:
    judged = [r["passed"][name] for r in rows if r["passed"].get(name) is not None]
    return round(sum(judged) / len(judged), 3) if judged else None


def summarise(rows: list[dict], items: list[Item]) -> dict:
    answerable = [r for r, i in zip(rows, items, strict=True) if i.expect == "answer"]
    latency = sorted(r["latency_s"] for r in rows)
    return {"n": len(rows), "key_fact": rate(rows, "key_fact"), "key_fact_in_reply": rate(rows, "key_fact_reply"),
            "cited_rate": round(sum(r["cited"] for r in answerable) / len(answerable), 3) if answerable else None,
            "citation_support": rate(rows, "citation_support"),
            "invented_numbers": sum(r["passed"].get("number_faithfulness") is False for r in rows),
            "p50_s": round(statistics.median(latency), 2),
            "p90_s": round(latency[max(0, int(0.9 * len(latency) + 0.999) - 1)], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="sample-holdout,seed")
    parser.add_argument("--baseline", help="a commit to measure the same way, in the same run")
    parser.add_argument("--quiet-only", action="store_true")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    sets = {name: load_set(name) for name in args.sets.split(",")}
    sources: dict[str, Path | None] = {"current": None}
    worktree = None
    if args.baseline:
        worktree = Path(tempfile.mkdtemp(prefix="hanchang-baseline-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        sources = {f"baseline {args.baseline}": worktree, **sources}
    results: dict = {}
    try:
        for label, source in sources.items():
            server = Server(args.port, source)
            try:
                server.ask(Item("warm", "공공부문 인공지능 활용 방향은?"))  # the engine warm, Kiwi loaded
                for load in ("quiet",) if args.quiet_only else ("quiet", "busy"):
                    for name, items in sets.items():
                        print(f"{label} · {load} · {name}", flush=True)
                        results.setdefault(label, {}).setdefault(load, {})[name] = measure(server, items,
                                                                                           load == "busy")
            finally:
                server.close()
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    table = {label: {load: {name: found["summary"] for name, found in by_set.items()}
                     for load, by_set in by_load.items()} for label, by_load in results.items()}
    print(json.dumps(table, indent=2, ensure_ascii=False))
    out = ROOT / "benchmarks" / "results" / "answers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "summary": table, "runs": results}, indent=2,
                              ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
