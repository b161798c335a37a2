"""Chunk-level Recall@5 on the seed documents (../shared/bench/seed_qa_dev.jsonl).

A hit counts when one of the top-5 chunks holds the question's `must` string (whitespace
collapsed). Writes benchmarks/results/retrieval_seeds.json.

    .venv/bin/python benchmarks/retrieval_seeds.py
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from hanchang_devtools.scratch_collection import build_collection

from hanchang.knowledge.search import search

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def collapse(text: str) -> str:
    return re.sub(r"\s+", "", text)


def main() -> None:
    questions = [json.loads(line) for line in
                 (SHARED / "bench" / "seed_qa_dev.jsonl").read_text(encoding="utf-8").splitlines() if line]
    store, collection, timings = build_collection(SHARED / "seeds")
    print(f"indexed {timings['files']} documents, {timings['chunks']} chunks in {timings['total_s']} s")
    hits, rows = 0, []
    for item in questions:
        started = time.perf_counter()
        results = search(store, [collection], item["q"], top_k=5)
        elapsed = (time.perf_counter() - started) * 1000
        rank = next((i for i, r in enumerate(results, 1) if collapse(item["must"]) in collapse(r.text)), None)
        hits += rank is not None
        rows.append({"q": item["q"], "must": item["must"], "rank": rank, "ms": round(elapsed, 2)})
        print(f"{'✓' if rank else '✗'} {rank or '-':>2}  {item['q']}")
    recall = hits / len(questions)
    print(f"\nRecall@5 (chunk level): {recall:.3f} ({hits}/{len(questions)})")
    out = ROOT / "benchmarks" / "results" / "retrieval_seeds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"recall@5": round(recall, 4), "indexing": timings, "questions": rows},
                              indent=2, ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
