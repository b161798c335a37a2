"""Korean retrieval on KorQuAD 1.0 dev: one document per paragraph, gold = its paragraph.

Runs the real pipeline (Markdown files titled by their article → parse → chunk → Kiwi →
fused BM25 index → `knowledge.search.search`) and, in the same run, the whitespace-token
BM25 baseline. With --postgres, the same collection is also built in a scratch PostgreSQL
database and searched through the shared index inside PostgreSQL, and the two are compared.
Prints Recall@1/5/10, MRR@10, nDCG@10, p50/p95 query latency and indexing throughput;
writes benchmarks/results/retrieval_korquad.json.

    .venv/bin/python benchmarks/retrieval_korquad.py [--data PATH] [--limit N]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np
from hanchang_devtools.scratch_collection import build_collection

from hanchang.knowledge.search import search

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "bench" / "korquad_v1.0_dev.json"


def metrics(ranked: list[list[int]], gold: list[int], latencies_ms: list[float]) -> dict:
    r1 = r5 = r10 = mrr = ndcg = 0.0
    for docs, g in zip(ranked, gold, strict=True):
        if g in docs[:10]:
            rank = docs.index(g) + 1
            r1 += rank == 1
            r5 += rank <= 5
            r10 += 1
            mrr += 1 / rank
            ndcg += 1 / math.log2(rank + 1)
    n = len(gold)
    out = {"recall@1": r1 / n, "recall@5": r5 / n, "recall@10": r10 / n, "mrr@10": mrr / n,
           "ndcg@10": ndcg / n}
    out = {k: round(v, 4) for k, v in out.items()}
    if latencies_ms:
        out["p50_ms"] = round(float(np.percentile(latencies_ms, 50)), 2)
        out["p95_ms"] = round(float(np.percentile(latencies_ms, 95)), 2)
    return out


def run_index(folder: Path, questions: list[tuple[str, int]], postgres: str | None) -> tuple[dict, dict]:
    """Build the collection (embedded on SQLite, or shared in PostgreSQL) and ask every question."""
    store, collection, timings = build_collection(folder, postgres=postgres)
    label = "PostgreSQL shared index" if postgres else "embedded index"
    print(f"{label}: indexed {timings['files']} documents ({timings['chunks']} chunks) in {timings['total_s']} s "
          f"(ingest {timings['ingest_s']} s + index {timings['index_build_s']} s)")
    doc_of_path = {}
    with store.db.session() as session:
        from sqlalchemy import select

        from hanchang.store.tables import Document

        for doc_id, key in session.execute(select(Document.id, Document.source_key)):
            doc_of_path[doc_id] = int(Path(key).stem[1:])

    search(store, [collection], "워밍업", 10)  # load Kiwi and the index once
    ranked, latencies = [], []
    for question, _ in questions:
        started = time.perf_counter()
        results = search(store, [collection], question, top_k=30)
        latencies.append((time.perf_counter() - started) * 1000)
        seen: list[int] = []
        for r in results:
            pid = doc_of_path[r.document_id]
            if pid not in seen:
                seen.append(pid)
        ranked.append(seen[:10])
    store.db.dispose()
    return metrics(ranked, [g for _, g in questions], latencies), timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--postgres", help="a PostgreSQL server URL: also build and search the shared index there")
    args = parser.parse_args()
    data = json.loads(args.data.read_text(encoding="utf-8"))
    paragraphs, titles, questions = [], [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            pid = len(paragraphs)
            paragraphs.append(paragraph["context"])
            titles.append(article["title"])
            questions += [(qa["question"], pid) for qa in paragraph["qas"]]
    if args.limit:
        questions = questions[: args.limit]
    print(f"{len(paragraphs)} paragraphs, {len(questions)} questions")

    folder = Path(tempfile.mkdtemp(prefix="korquad-"))
    for pid, (title, text) in enumerate(zip(titles, paragraphs, strict=True)):
        (folder / f"p{pid:04d}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    gold = [g for _, g in questions]
    ours, timings = run_index(folder, questions, None)
    shared = shared_timings = None
    if args.postgres:
        shared, shared_timings = run_index(folder, questions, args.postgres)

    # Whitespace-token BM25 (what many peers do for Korean), same paragraphs.
    corpus = [f"{t} {p}".split() for t, p in zip(titles, paragraphs, strict=True)]
    baseline = bm25s.BM25()
    baseline.index(bm25s.tokenize([" ".join(c) for c in corpus], stopwords=None, show_progress=False,
                                  lower=True), show_progress=False)
    base_ranked = []
    for question, _ in questions:
        tokens = bm25s.tokenize([question], stopwords=None, show_progress=False, lower=True)
        ids, _ = baseline.retrieve(tokens, k=10, show_progress=False)
        base_ranked.append([int(x) for x in ids[0]])
    base = metrics(base_ranked, gold, [])

    print(f"\n{'':22}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'MRR@10':>8}{'nDCG@10':>9}{'p50 ms':>8}{'p95 ms':>8}")
    rows = [("Hanchang (Kiwi+bigram)", ours), ("  …in PostgreSQL", shared), ("whitespace BM25", base)]
    for label, m in ((label, m) for label, m in rows if m):
        print(f"{label:22}{m['recall@1']:8.4f}{m['recall@5']:8.4f}{m['recall@10']:8.4f}{m['mrr@10']:8.4f}"
              f"{m['ndcg@10']:9.4f}{m.get('p50_ms', float('nan')):8.2f}{m.get('p95_ms', float('nan')):8.2f}")
    report = {"paragraphs": len(paragraphs), "questions": len(questions), "indexing": timings,
              "documents_per_s": round(timings["files"] / timings["total_s"], 1),
              "hanchang": ours, "whitespace_bm25": base}
    if shared:
        per_s = round(shared_timings["files"] / shared_timings["total_s"], 1)
        report["postgres_shared_index"] = {**shared, "indexing": shared_timings, "documents_per_s": per_s,
                                           "mrr@10_difference": round(shared["mrr@10"] - ours["mrr@10"], 4),
                                           "recall@5_difference": round(shared["recall@5"] - ours["recall@5"], 4)}
    out = ROOT / "benchmarks" / "results" / "retrieval_korquad.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
