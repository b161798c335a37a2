"""Grounded Q&A against the guideline's SLO (3.2.5: 90 % of Q&A within 7 s) on the embedded model.

Sets up a fresh HANCHANG_HOME as a user would (`hanchang setup`: sample corpus, first admin),
starts `hanchang serve`, and asks the seed dev questions (../shared/bench/seed_qa_dev.jsonl)
grounded on the `sample` collection through /v1/chat/completions (streamed), first one at a
time, then 4 at once. Prints p50/p90 latency and time to first token, prompt tokens, and the
share of answers whose citations hold the question's `must` string; then requests/s of the
engine process vs. the old in-process llama.cpp backend on the same grounded prompts.
Writes benchmarks/results/qa_slo.json.

    .venv/bin/python benchmarks/qa_slo.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HANCHANG_SHARED") or ROOT.parent / "shared")
HANCHANG = str(Path(sys.executable).with_name("hanchang"))


def collapse(text: str) -> str:
    return re.sub(r"\s+", "", text)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def ask(url: str, key: str, question: dict, messages: list | None = None) -> dict:
    """One streamed grounded question; timings from the client's side."""
    body = {"model": "local", "stream": True, "temperature": 0,
            "messages": messages or [{"role": "user", "content": question["q"]}]}
    if messages is None:
        body["collections"] = ["sample"]
    started = time.perf_counter()
    first, usage, citations, text = None, {}, [], []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    first = first or time.perf_counter()
                    text.append(choice["delta"]["content"])
            if chunk.get("usage"):
                usage, citations = chunk["usage"], chunk.get("citations") or []
    total = time.perf_counter() - started
    hit = any(collapse(question["must"]) in collapse(c["text"]) for c in citations)
    return {"q": question["q"], "latency_s": round(total, 2), "ttft_s": round((first or started) - started, 2),
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "citation_hit": hit, "answer": "".join(text)[:200]}


def summary(rows: list[dict]) -> dict:
    latency, ttft = [r["latency_s"] for r in rows], [r["ttft_s"] for r in rows]
    return {"n": len(rows), "p50_s": round(statistics.median(latency), 2), "p90_s": round(percentile(latency, 0.9), 2),
            "ttft_p50_s": round(statistics.median(ttft), 2), "ttft_p90_s": round(percentile(ttft, 0.9), 2),
            "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] or 0 for r in rows)),
            "within_7s": round(sum(r["latency_s"] <= 7 for r in rows) / len(rows), 3),
            "citation_hit": round(sum(r["citation_hit"] for r in rows) / len(rows), 3)}


def grounded_prompts(home: Path, questions: list[dict], url: str) -> list[list[dict]]:
    """The exact messages the server built for each question, rebuilt with the same library code."""
    from hanchang.assist import qa
    from hanchang.assist.reading_budget import reading_budget
    from hanchang.config import load_settings
    from hanchang.knowledge.index_store import IndexStore
    from hanchang.store.db import Database
    from hanchang.store.tables import Collection

    settings = load_settings(None)
    db = Database(settings.resolved_database_url)
    store = IndexStore(home, db)
    engine = next(m for m in httpx.get(url + "/readyz", timeout=10).json()["models"] if m["name"].startswith("qwen"))
    spec = settings.model_specs()[0]
    with db.session() as session:
        collection = session.query(Collection).filter_by(name="sample").one()
        session.expunge(collection)
    prompts = []
    for item in questions:
        budget = reading_budget(spec, item["q"], prefill_tps=engine["prefill_tokens_per_s"],
                                decode_tps=engine["decode_tokens_per_s"],
                                first_token_s=settings.slo.first_token_seconds, answer_s=settings.slo.qa_seconds)
        passages = qa.gather_passages(store, [collection], item["q"], budget.source_chars)
        prompts.append(qa.grounded_messages([{"role": "user", "content": item["q"]}], passages))
    db.dispose()
    return prompts


def in_process_rate(model: Path, prompts: list[list[dict]], max_tokens: int) -> float:
    """The old backend: llama.cpp inside the serving process (requests/s on the same prompts)."""
    code = f"""
import json, sys, time
from llama_cpp import Llama
prompts = json.load(sys.stdin)
llm = Llama(model_path={str(model)!r}, n_ctx=4096, n_threads=2, verbose=False)
llm.create_chat_completion(messages=prompts[0], max_tokens=8)
started = time.perf_counter()
for messages in prompts:
    llm.create_chat_completion(messages=messages, max_tokens={max_tokens}, temperature=0)
print(len(prompts) / (time.perf_counter() - started))
"""
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(prompts), capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="times to ask the question set")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--first-token-seconds", type=float, default=None,
                        help="slo.first_token_seconds for the server (default: the config's, 2 s)")
    args = parser.parse_args()
    questions = [json.loads(line) for line in
                 (SHARED / "bench" / "seed_qa_dev.jsonl").read_text(encoding="utf-8").splitlines() if line]
    home = Path(tempfile.mkdtemp(prefix="hanchang-qa-slo-"))
    env = {**os.environ, "HANCHANG_HOME": str(home)}
    if args.first_token_seconds:
        env["HANCHANG_SLO__FIRST_TOKEN_SECONDS"] = str(args.first_token_seconds)
        os.environ["HANCHANG_SLO__FIRST_TOKEN_SECONDS"] = str(args.first_token_seconds)
    os.environ["HANCHANG_HOME"] = str(home)
    subprocess.run([HANCHANG, "setup"], env=env, check=True, capture_output=True)
    key = dict(line.split("=", 1) for line in (home / "initial-credentials.txt").read_text().splitlines())["api_key"]
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen([HANCHANG, "serve", "--port", str(args.port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:  # ready = the engine has loaded and measured itself
            try:
                report = httpx.get(url + "/readyz", timeout=5).json()
                if all(m["state"] == "ready" for m in report["models"]):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready in 180 s")
            time.sleep(0.5)
        # Warm up as a server in use is: Kiwi loaded, the shared instructions in the prompt cache.
        ask(url, key, {"q": "공공부문 인공지능 활용 방향", "must": "-"})
        sequential = [ask(url, key, q) for _ in range(args.rounds) for q in questions]
        for row in sequential:
            print(f"{'✓' if row['citation_hit'] else '✗'} {row['latency_s']:5.1f} s  TTFT {row['ttft_s']:4.1f} s  "
                  f"{row['prompt_tokens']:5} tok  {row['q']}")
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(lambda q: ask(url, key, q), questions * args.rounds))
        engine = next(m for m in httpx.get(url + "/readyz", timeout=5).json()["models"])
        prompts = grounded_prompts(home, questions, url)
        max_tokens = 128
        started = time.perf_counter()
        for messages in prompts:
            httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=300,
                       json={"model": "local", "messages": messages, "max_tokens": max_tokens,
                             "temperature": 0}).raise_for_status()
        engine_rate = len(prompts) / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(30)
    in_process = in_process_rate(home / "models" / "qwen2.5-coder-0.5b-instruct.gguf", prompts, max_tokens)
    result = {"first_token_seconds": args.first_token_seconds or 2.0,
              "sequential": summary(sequential), "concurrent_4": summary(concurrent),
              "engine_speed": {k: engine.get(k) for k in ("prefill_tokens_per_s", "decode_tokens_per_s")},
              "requests_per_s": {"engine_process": round(engine_rate, 3), "in_process": round(in_process, 3),
                                 "ratio": round(engine_rate / in_process, 3), "max_tokens": max_tokens},
              "questions": sequential}
    print(json.dumps({k: v for k, v in result.items() if k != "questions"}, indent=2, ensure_ascii=False))
    suffix = f"-{args.first_token_seconds:g}s" if args.first_token_seconds else ""
    out = ROOT / "benchmarks" / "results" / f"qa_slo{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
