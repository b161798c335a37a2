"""Retrieval at 100k chunks: the shared index inside PostgreSQL against the embedded index.

Synthetic chunks are made from KorQuAD 1.0 dev paragraphs (each a run of 2–4 sentences of one
article, so terms keep their real distribution), grouped into documents of 100 chunks, written
into a scratch PostgreSQL database, analysed with Kiwi as ingest does, then indexed both ways.
KorQuAD questions are the queries. Prints index build throughput and query p50/p95 of each;
writes benchmarks/results/retrieval_scale.json.

    .venv/bin/python benchmarks/retrieval_scale.py [--chunks 100000] [--queries 300]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
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
from hanchang_devtools.scratch_collection import scratch_postgres
from sqlalchemy import select

from hanchang.config import load_settings
from hanchang.knowledge import collections as kc
from hanchang.knowledge.analysis import shared_analyzer
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.search import search
from hanchang.store import migrate
from hanchang.store.accounts import create_agency
from hanchang.store.db import Database
from hanchang.store.tables import Chunk, Collection, Document, DocumentVersion

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "bench" / "korquad_v1.0_dev.json"
SENTENCE = re.compile(r"(?<=[.!?다])\s+")


def synthetic_chunks(total: int, seed: int = 7) -> tuple[list[tuple[str, str]], list[str]]:
    """(title, text) chunks of 2–4 consecutive sentences from one article; and the questions."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    articles = []
    questions = []
    for article in data["data"]:
        sentences = [s for p in article["paragraphs"] for s in SENTENCE.split(p["context"]) if len(s) > 10]
        articles.append((article["title"], sentences))
        questions += [qa["question"] for p in article["paragraphs"] for qa in p["qas"]]
    rng = random.Random(seed)
    chunks = []
    while len(chunks) < total:
        title, sentences = rng.choice(articles)
        start = rng.randrange(max(1, len(sentences) - 1))
        chunks.append((title, " ".join(sentences[start:start + rng.randint(2, 4)])))
    return chunks, questions


def write_chunks(db: Database, collection_id: int, chunks: list[tuple[str, str]], per_document: int = 100) -> float:
    """Insert documents, versions and analysed chunks as ingest would; returns the analysis seconds."""
    analyzer = shared_analyzer()
    analysed = 0.0
    for start in range(0, len(chunks), 5000):
        batch = chunks[start:start + 5000]
        began = time.perf_counter()
        terms = analyzer.morphemes_many([f"{title} {text}" for title, text in batch])
        analysed += time.perf_counter() - began
        with db.session() as session:
            for offset in range(0, len(batch), per_document):
                part = batch[offset:offset + per_document]
                document = Document(collection_id=collection_id, source_key=f"synthetic/{start + offset}.txt",
                                    title=part[0][0][:300], grade="O")
                session.add(document)
                session.flush()
                version = DocumentVersion(document_id=document.id, number=1, content_hash=str(start + offset),
                                          parser="text", size_bytes=0, pages=None, chunk_count=len(part))
                session.add(version)
                session.flush()
                session.add_all(Chunk(collection_id=collection_id, document_id=document.id, version_id=version.id,
                                      ordinal=i, text=text, section="", page=None,
                                      terms=" ".join(terms[offset + i]))
                                for i, (_, text) in enumerate(part))
            collection = session.get(Collection, collection_id)
            kc.touch(collection)
    return analysed


def timed_queries(store: IndexStore, collection, questions: list[str]) -> tuple[dict, list[list[int]]]:
    search(store, [collection], "워밍업", 10)
    latencies, ranked = [], []
    for question in questions:
        began = time.perf_counter()
        results = search(store, [collection], question, top_k=10)
        latencies.append((time.perf_counter() - began) * 1000)
        ranked.append([r.chunk_id for r in results])
    return {"queries": len(questions), "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "max_ms": round(float(max(latencies)), 2)}, ranked


def agreement(ours: list[list[int]], exact: list[list[int]]) -> dict:
    """How the shared index's top 10 compares with the embedded index's (which scores every posting)."""
    same = sum(a == b for a, b in zip(ours, exact, strict=True))
    overlap = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ours, exact, strict=True)]
    first = sum(a[:1] == b[:1] for a, b in zip(ours, exact, strict=True))
    return {"identical_top10": round(same / len(exact), 4), "mean_overlap@10": round(float(np.mean(overlap)), 4),
            "same_first": round(first / len(exact), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    parser.add_argument("--database", help="reuse a database a --keep run left (skips writing the chunks)")
    args = parser.parse_args()
    chunks, questions = synthetic_chunks(args.chunks)
    questions = random.Random(11).sample(questions, min(args.queries, len(questions)))
    home = Path(tempfile.mkdtemp(prefix="hanchang-scale-"))
    db = Database(args.database or scratch_postgres(args.postgres, keep=args.keep))
    print(f"database: {db.url}")
    migrate.upgrade(db.engine)
    written_s = analysis_s = 0.0
    if args.database:
        with db.session() as session:
            collection_id = session.scalar(select(Collection.id).where(Collection.name == "scale"))
    else:
        with db.session() as session:
            create_agency(session, "BENCH", "benchmark")
            collection_id = kc.create(session, "BENCH", "scale").id
        began = time.perf_counter()
        analysis_s = write_chunks(db, collection_id, chunks)
        written_s = time.perf_counter() - began
        print(f"{len(chunks)} chunks written in {written_s:.1f} s (Kiwi {analysis_s:.1f} s)")
    settings = load_settings(home=home)
    report = {"chunks": len(chunks), "chunks_written_s": round(written_s, 1), "kiwi_s": round(analysis_s, 1)}
    rankings = {}
    for kind in ("postgres", "embedded"):
        store = IndexStore(settings.home, db, kind)
        with db.session() as session:
            collection = session.get(Collection, collection_id)
        began = time.perf_counter()
        store.rebuild(collection_id, collection.index_generation)
        built = time.perf_counter() - began
        if kind == "postgres" and not args.database:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                for table in ("search_blocks", "search_terms"):  # as autovacuum would after a bulk load
                    connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
        timings, rankings[kind] = timed_queries(store, collection, questions)
        row = {"index_build_s": round(built, 1), "chunks_per_s": round(len(chunks) / built, 1), **timings}
        report[kind] = row
        print(f"{kind:9} index built in {built:.1f} s ({row['chunks_per_s']} chunks/s); "
              f"query p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, max {row['max_ms']} ms")
    report["postgres"]["agreement_with_embedded"] = agreement(rankings["postgres"], rankings["embedded"])
    print("shared vs embedded top 10:", report["postgres"]["agreement_with_embedded"])
    with db.engine.connect() as connection:
        report["postgres"]["blocks"] = connection.exec_driver_sql("SELECT count(*) FROM search_blocks").scalar()
        report["postgres"]["table_bytes"] = connection.exec_driver_sql(
            "SELECT pg_total_relation_size('search_blocks') + pg_total_relation_size('search_terms') "
            "+ pg_total_relation_size('search_chunks')").scalar()
    db.dispose()
    out = ROOT / "benchmarks" / "results" / "retrieval_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
