"""`hanchang ingest` and `hanchang search` as an IT officer uses them, on both databases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import SHARED, needs_shared
from hanchang.cli import app
from hanchang.config import load_settings
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import discover, ingest
from hanchang.knowledge.parsers import DocumentError
from hanchang.store.tables import Chunk, Collection, Document

SEEDS = SHARED / "seeds"

pytestmark = needs_shared


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("HANCHANG_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def search_json(cli, query, *extra):
    return json.loads(cli("search", "--collection", "guide", "--top-k", 5, "--json", *extra, query).stdout)


def statuses(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1]
    return {part.split()[0]: int(part.split()[1]) for part in last.split(" · ")}


def test_ingest_then_search_the_seed_documents(cli):
    result = cli("ingest", "--collection", "guide", SEEDS)
    assert statuses(result.stdout) == {"ingested": 5, "updated": 0, "unchanged": 0, "failed": 0, "pruned": 0}
    answer = search_json(cli, "데이터 보안 등급 세 가지는 무엇인가")
    top = answer["results"]
    assert {"text", "source", "score", "grade", "section", "version", "title"} <= set(top[0])
    assert any("기밀" in r["text"] and "민감" in r["text"] for r in top)
    assert top[0]["grade"] == "O" and top[0]["version"] == 1 and top[0]["superseded"] is False
    assert any("3.2.1" in r["section"] for r in top)


def test_batch_queries_print_one_line_each(cli, tmp_path):
    cli("ingest", "--collection", "guide", SEEDS)
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"q": "공공AI 3대 전략 목표"}\n{"q": "멀티 클라우드"}\n', encoding="utf-8")
    lines = cli("search", "--collection", "guide", "--top-k", 3, "--queries", queries).stdout.splitlines()
    assert [json.loads(x)["q"] for x in lines] == ["공공AI 3대 전략 목표", "멀티 클라우드"]
    assert all(len(json.loads(x)["results"]) == 3 for x in lines)


def test_reingest_is_incremental_and_prunes(cli, tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    cli("ingest", "--collection", "guide", folder)
    assert statuses(cli("ingest", "--collection", "guide", folder).stdout)["unchanged"] == 5
    changed = folder / "003_430102f8735eb5df.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n추가 문단: 한창 플랫폼 시범 운영.\n",
                       encoding="utf-8")
    (folder / "004_38020ef0d1905ee1.txt").unlink()
    counts = statuses(cli("ingest", "--collection", "guide", "--prune", folder).stdout)
    assert counts == {"ingested": 0, "updated": 1, "unchanged": 3, "failed": 0, "pruned": 1}
    found = search_json(cli, "한창 플랫폼 시범 운영")["results"]
    assert any("한창 플랫폼 시범 운영" in r["text"] for r in found)
    gone = search_json(cli, "AI 정부 실험실 시범운영")["results"]
    assert not any("AI 정부 실험실" in r["title"] for r in gone)


def test_versions_by_effective_date(cli, tmp_path):
    rule = tmp_path / "복무규정.txt"
    rule.write_text("제5조(연가) 연가는 연 15일로 한다.\n", encoding="utf-8")
    cli("ingest", "--collection", "guide", "--effective-from", "2020-01-01", rule)
    rule.write_text("제5조(연가) 연가는 연 21일로 한다.\n", encoding="utf-8")
    result = cli("ingest", "--collection", "guide", "--effective-from", "2025-03-01", rule)
    assert "new_version" in result.stdout
    today = search_json(cli, "연가 일수")["results"]
    assert [r["text"] for r in today] == ["제5조(연가) 연가는 연 21일로 한다."]
    assert today[0]["version"] == 2 and not today[0]["superseded"]
    past = search_json(cli, "연가 일수", "--as-of", "2023-06-30")["results"]
    assert [r["text"] for r in past] == ["제5조(연가) 연가는 연 15일로 한다."]
    assert past[0]["version"] == 1 and past[0]["superseded"] is True


def test_failures_are_reported_and_exit_codes(cli, tmp_path):
    result = cli("ingest", "--collection", "hwp", SHARED / "samples" / "hwp" / "password-12345.hwp", ok=False)
    assert result.exit_code == 1 and "암호가 걸린 문서" in result.stdout
    mixed = cli("ingest", "--collection", "hwp", SHARED / "samples" / "hwp" / "password-12345.hwp",
                SHARED / "samples" / "hwp" / "sample-5017.hwp",
                SHARED / "samples" / "hwpx" / "error__20240626__no_manifest.hwpx")
    assert statuses(mixed.stdout)["ingested"] == 2 and statuses(mixed.stdout)["failed"] == 1
    hits = json.loads(cli("search", "--collection", "hwp", "--json", "구세 조례 입법예고").stdout)["results"]
    assert hits and "error__20240626__no_manifest.hwpx" in hits[0]["source"]
    assert cli("search", "--collection", "nope", "x", ok=False).exit_code == 1
    assert cli("ingest", "--collection", "x", "--grade", "Z", SEEDS, ok=False).exit_code == 1


def test_a_crash_mid_ingest_leaves_the_collection_as_it_was(database_url, tmp_path):
    settings = load_settings(database_url=database_url)
    from hanchang.bootstrap import prepare_database

    db = prepare_database(settings)
    store = IndexStore(settings.home, db)
    with db.session() as session:
        collection = kc.create(session, "DEMO", "guide")
    sources, _, _ = discover([SEEDS])
    with db.session() as session:
        ingest(session, session.get(Collection, collection.id), sources[:2])
    seen = []

    def crash_on_third(name):
        seen.append(name)
        if len(seen) == 3:
            raise KeyboardInterrupt("operator pressed Ctrl-C")

    with pytest.raises(KeyboardInterrupt), db.session() as session:
        ingest(session, session.get(Collection, collection.id), sources, progress=crash_on_third)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2
        chunks = session.scalar(select(func.count()).select_from(Chunk))
        generation = session.get(Collection, collection.id).index_generation
    assert chunks > 0 and generation == 1
    assert len(store.get(_reload(db, collection.id))) == chunks  # the index matches what was kept
    db.dispose()


def _reload(db, collection_id):
    with db.session() as session:
        return session.get(Collection, collection_id)


def test_a_reranker_hook_reorders_results(database_url, tmp_path):
    from hanchang.bootstrap import prepare_database
    from hanchang.knowledge.operations import ingest_paths
    from hanchang.knowledge.search import search

    settings = load_settings(database_url=database_url)
    db = prepare_database(settings)
    store = IndexStore(settings.home, db)
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "guide").id
    ingest_paths(db, store, collection_id, [SEEDS])
    collection = _reload(db, collection_id)
    plain = search(store, [collection], "데이터 보안 등급", top_k=5)
    def shortest_three(query, results):
        return sorted(results, key=lambda r: len(r.text))[:3]

    by_length = search(store, [collection], "데이터 보안 등급", top_k=5, rerank=shortest_three)
    assert [r.chunk_id for r in by_length] == [r.chunk_id for r in shortest_three("", plain)]
    db.dispose()


def library_tripping_hwp(folder: Path) -> Path:
    """A damaged HWP that makes olefile itself raise (not one of our parser errors)."""
    import random

    from hanchang.knowledge.parsers import PARSERS

    source = (SHARED / "samples" / "hwp" / "sample-5017.hwp").read_bytes()
    rng = random.Random(3)
    for attempt in range(400):
        damaged = bytearray(source)
        for _ in range(20):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = folder / f"damaged-{attempt}.hwp"
        path.write_bytes(bytes(damaged))
        try:
            PARSERS["hwp"](path, path.name)
        except Exception as exc:
            if not isinstance(exc, DocumentError):
                return path
        path.unlink()
    raise AssertionError("no damaged sample trips the library")


def test_one_broken_file_never_aborts_a_folder_ingest(cli, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    bad = library_tripping_hwp(folder)
    shutil.copy(SHARED / "samples" / "hwp" / "nested-tables-basicsReport.hwp", folder)
    shutil.copy(SHARED / "samples" / "hwp" / "sample-5017.hwp", folder)
    result = cli("ingest", "--collection", "mixed", folder, ok=False)
    counts = statuses(result.stdout)
    assert (counts["ingested"], counts["failed"]) == (2, 1), result.stdout
    assert bad.name in result.stdout and "손상" in result.stdout
