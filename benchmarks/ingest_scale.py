"""Ingestion and search at scale: synthetic Korean documents up to ~100k chunks.

Sentences are recombined from the seed corpus's own sentences (so the vocabulary is real
Korean government prose), written as files, then ingested with the real pipeline. Prints,
for each size: build time, index size on disk, load time, p50/p95 query latency, and how
they grow. Writes benchmarks/results/ingest_scale.json.

    .venv/bin/python benchmarks/ingest_scale.py [--sizes 10000 30000 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from hanchang_devtools.scratch_collection import build_collection

from hanchang.knowledge.index import CollectionIndex
from hanchang.knowledge.search import search

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT.parent / "shared" / "seeds"
CHUNKS_PER_FILE = 50


def sentences() -> list[str]:
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    parts = [s.strip() for s in re.split(r"(?<=[다함음임])[.\s]\s*", re.sub(r"\s+", " ", text))]
    return [s for s in parts if 20 <= len(s) <= 200]


def make_corpus(folder: Path, chunks: int, pool: list[str], rng: random.Random) -> None:
    for number in range(max(1, chunks // CHUNKS_PER_FILE)):
        paragraphs = []
        for section in range(CHUNKS_PER_FILE):
            body = " ".join(rng.choice(pool) for _ in range(rng.randint(4, 7)))
            paragraphs.append(f"{section + 1}.{number % 9 + 1} 항목 {section + 1}\n{body}\n")
        (folder / f"doc{number:05d}.txt").write_text("\n".join(paragraphs), encoding="utf-8")


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    pool = sentences()
    report = []
    for size in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"scale{size}-"))
        make_corpus(folder, size, pool, rng)
        store, collection, timings = build_collection(folder)
        index_dir = store.root / f"c{collection.id}" / f"g{collection.index_generation}"
        started = time.perf_counter()
        CollectionIndex.load(index_dir)
        load_s = time.perf_counter() - started
        queries = [" ".join(rng.choice(pool).split()[:6]) for _ in range(args.queries)]
        search(store, [collection], "워밍업", 5)
        latencies = []
        for query in queries:
            started = time.perf_counter()
            search(store, [collection], query, 5)
            latencies.append((time.perf_counter() - started) * 1000)
        row = {"chunks": timings["chunks"], "files": timings["files"], "ingest_s": timings["ingest_s"],
               "index_build_s": timings["index_build_s"],
               "index_mb": round(directory_size(index_dir) / 1e6, 1),
               "load_s": round(load_s, 3), "p50_ms": round(float(np.percentile(latencies, 50)), 2),
               "p95_ms": round(float(np.percentile(latencies, 95)), 2)}
        report.append(row)
        print(json.dumps(row))
    header = ("chunks", "ingest s", "index s", "index MB", "load s", "p50 ms", "p95 ms")
    print("\n" + "".join(f"{h:>10}" for h in header))
    for r in report:
        values = (r["chunks"], r["ingest_s"], r["index_build_s"], r["index_mb"], r["load_s"], r["p50_ms"],
                  r["p95_ms"])
        print("".join(f"{v:>10}" for v in values))
    out = ROOT / "benchmarks" / "results" / "ingest_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
