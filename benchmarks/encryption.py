"""Encryption at rest on KorQuAD 1.0 dev: what sealing S text costs, and whether any leaks.

Builds the same collection twice in one run — as 공개 (O: stored clear) and as 민감 (S: chunk
text, titles, terms and vectors sealed with AES-256-GCM, index terms as keyed hashes) — in
alternating rounds, and asks every question of both. Prints ingest and search time of each and
their ratio (goal ≤ 1.15× on both), MRR@10 of each (goal: within 0.002), and the bytes of clear S
text found by scanning the S build's database file, its WAL, everything under its
HANCHANG_HOME (indexes, uploads, key file) and the log it wrote at DEBUG (goal 0). Writes
benchmarks/results/encryption.json.

    .venv/bin/python benchmarks/encryption.py [--limit N] [--rounds 2] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from hanchang_devtools.scratch_collection import build_collection

from hanchang.knowledge.search import search

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "bench" / "korquad_v1.0_dev.json"


def ask_all(store, collection, questions: list[tuple[str, int]], doc_of: dict[int, int]) -> tuple[float, float]:
    """MRR@10 (gold paragraph) and the total search time in seconds."""
    search(store, [collection], "워밍업", 10)
    reciprocal, started = 0.0, time.perf_counter()
    for question, gold in questions:
        seen: list[int] = []
        for hit in search(store, [collection], question, top_k=30):
            paragraph = doc_of[hit.document_id]
            if paragraph not in seen:
                seen.append(paragraph)
        if gold in seen[:10]:
            reciprocal += 1 / (seen.index(gold) + 1)
    return reciprocal / len(questions), time.perf_counter() - started


def documents(store) -> dict[int, int]:
    from sqlalchemy import select

    from hanchang.store.tables import Document

    with store.db.session() as session:
        return {doc_id: int(Path(key).stem[1:]) for doc_id, key in session.execute(
            select(Document.id, Document.source_key))}


def clear_bytes(paths: list[Path], needles: list[bytes]) -> dict[str, int]:
    """Bytes of the needles found in clear in each file (counted once per occurrence)."""
    found = {}
    for path in paths:
        data = path.read_bytes()
        hits = sum(data.count(n) * len(n) for n in needles)
        if hits:
            found[str(path)] = hits
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--rounds", type=int, default=2, help="alternating O/S builds of each")
    parser.add_argument("--postgres", help="a PostgreSQL server URL: build in scratch databases there instead")
    args = parser.parse_args()
    data = json.loads(args.data.read_text(encoding="utf-8"))
    paragraphs, titles, questions = [], [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            questions += [(qa["question"], len(paragraphs)) for qa in paragraph["qas"]]
            paragraphs.append(paragraph["context"])
            titles.append(article["title"])
    if args.limit:
        questions = questions[: args.limit]
    folder = Path(tempfile.mkdtemp(prefix="korquad-"))
    for pid, (title, body) in enumerate(zip(titles, paragraphs, strict=True)):
        (folder / f"p{pid:04d}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    print(f"{len(paragraphs)} paragraphs, {len(questions)} questions, {args.rounds} rounds of O and S")

    # Distinctive stretches of the S text to look for in clear: 12 characters from each of 400
    # paragraphs (spaces kept, as stored), and every title.
    rng = random.Random(7)
    needles = sorted({p[i:i + 12].encode() for p in rng.sample(paragraphs, min(400, len(paragraphs)))
                      for i in [rng.randrange(max(1, len(p) - 12))]} | {t.encode() for t in set(titles) if len(t) >= 4})

    timings: dict[str, list[dict]] = {"O": [], "S": []}
    mrr: dict[str, float] = {}
    leak: dict[str, int] = {}
    for round_number in range(args.rounds):
        for grade in ("O", "S") if round_number % 2 == 0 else ("S", "O"):
            home = Path(tempfile.mkdtemp(prefix=f"hanchang-enc-{grade}-"))
            log_file = home / "hanchang.log"
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setLevel(logging.DEBUG)
            root = logging.getLogger()
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
            try:
                store, collection, built = build_collection(folder, name="korquad", postgres=args.postgres,
                                                            grade=grade, home=home)
                score, search_s = ask_all(store, collection, questions, documents(store))
            finally:
                root.removeHandler(handler)
                handler.close()
            built["search_s"] = round(search_s, 2)
            timings[grade].append(built)
            mrr[grade] = round(score, 4)
            print(f"round {round_number + 1} {grade}: ingest {built['ingest_s']} s + index {built['index_build_s']} s,"
                  f" search {built['search_s']} s for {len(questions)} questions, MRR@10 {score:.4f}")
            if grade == "S":
                store.db.dispose()
                files = [p for p in home.rglob("*") if p.is_file()]
                leak = clear_bytes(files, needles)
                print(f"  clear S text found: {sum(leak.values())} bytes in {len(leak)} files "
                      f"(scanned {len(files)} files, {len(needles)} needles)")

    def median(grade: str, key: str) -> float:
        return statistics.median(t[key] for t in timings[grade])

    ingest_ratio = (median("S", "ingest_s") + median("S", "index_build_s")) / (
        median("O", "ingest_s") + median("O", "index_build_s"))
    search_ratio = median("S", "search_s") / median("O", "search_s")
    print(f"\nS / O ingest+index time: {ingest_ratio:.3f}×   search time: {search_ratio:.3f}×   "
          f"MRR@10 O {mrr['O']:.4f} S {mrr['S']:.4f} (Δ {mrr['S'] - mrr['O']:+.4f})   "
          f"clear S bytes: {sum(leak.values())}")
    report = {"paragraphs": len(paragraphs), "questions": len(questions), "rounds": args.rounds,
              "database": "postgresql" if args.postgres else "sqlite", "timings": timings,
              "ingest_ratio": round(ingest_ratio, 3), "search_ratio": round(search_ratio, 3),
              "mrr@10": mrr, "mrr_difference": round(mrr["S"] - mrr["O"], 4),
              "clear_s_bytes": sum(leak.values()), "clear_s_files": leak}
    out = ROOT / "benchmarks" / "results" / ("encryption-postgres.json" if args.postgres else "encryption.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
