"""Retrieval inside PostgreSQL: the shared index ranks as the embedded one does, over the same
database; what one host ingests, updates, supersedes or removes is what every other host finds
at once; the postings stay equal to the chunks' terms through every change, concurrent ingests
included; and merging a term's blocks changes nothing but their number."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from conftest import SHARED, needs_shared
from hanchang.bootstrap import prepare_database
from hanchang.config import load_settings
from hanchang.knowledge import collections as kc
from hanchang.knowledge import shared_index
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_paths, ingest_sources
from hanchang.knowledge.search import search
from hanchang.store.tables import Collection, SearchBlock, SearchChunk

SEEDS = SHARED / "seeds"
QUERIES = ["데이터 보안 등급", "초거대 AI 도입 절차", "민감 정보는 어떤 모델을 써야 하나요", "클라우드 보안인증",
           "개인정보 비식별 조치", "서울시 챗봇", "행정안전부", "AI 정부 실험실 시범운영 기간", "GPU 자원",
           "공공부문 성공사례 확산", "서비스 수준 목표 응답시간", "기밀 자료 외부 반출", "생성형 AI 환각",
           "2025년 예산", "MOIS", "API 키 관리"]

pytestmark = needs_shared


@pytest.fixture
def postgres(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the shared index is PostgreSQL's (set HANCHANG_TEST_DATABASE_URL)")
    settings = load_settings(database_url=database_url)
    db = prepare_database(settings)
    yield settings, db
    db.dispose()


def reload(db, collection_id: int) -> Collection:
    with db.session() as session:
        return session.get(Collection, collection_id)


def found(store: IndexStore, db, collection_id: int, query: str, **kw) -> list[str]:
    return [r.source for r in search(store, [reload(db, collection_id)], query, top_k=10, **kw)]


def assert_postings_match_chunks(db) -> None:
    """Each term's postings of live chunks are the live chunks listing that term (so the document
    frequency a search counts from them is right), and no live chunk has two postings of one term."""
    with db.session() as session:
        live = {row.chunk_id: set(np.frombuffer(row.terms, dtype=shared_index.TERM_ID).tolist())
                for row in session.execute(select(SearchChunk.chunk_id, SearchChunk.terms))}
        blocks = session.execute(select(SearchBlock.term_id, SearchBlock.postings)).all()
    listed = Counter(t for terms in live.values() for t in terms)
    posted: dict[int, list[int]] = {}
    for term_id, blob in blocks:
        chunks = np.frombuffer(blob, dtype=shared_index.POSTING)["chunk"].tolist()
        posted.setdefault(term_id, []).extend(c for c in chunks if c in live)
    assert listed and {t: len(c) for t, c in posted.items() if c} == dict(listed)
    assert all(len(c) == len(set(c)) for c in posted.values())


def test_the_shared_index_ranks_as_the_embedded_one(postgres):
    settings, db = postgres
    shared, embedded = IndexStore(settings.home, db), IndexStore(settings.home, db, "embedded")
    assert shared.shared is not None and embedded.shared is None
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "guide").id
    ingest_paths(db, shared, collection_id, [SEEDS, SHARED / "samples" / "hwpx"])
    collection = reload(db, collection_id)
    assert len(shared.get(collection)) == len(embedded.get(collection)) > 50
    for query in QUERIES:
        ours = search(shared, [collection], query, top_k=10)
        theirs = search(embedded, [collection], query, top_k=10)
        assert [r.chunk_id for r in ours] == [r.chunk_id for r in theirs], query
        assert [r.score for r in ours] == pytest.approx([r.score for r in theirs])
    assert_postings_match_chunks(db)

    # Postings damaged (here: half deleted by hand): a reindex builds them again from the chunks.
    before = [r.chunk_id for r in search(shared, [collection], QUERIES[0], top_k=10)]
    with db.session() as session:
        session.execute(text("DELETE FROM search_blocks WHERE term_id % 2 = 0"))
    assert [r.chunk_id for r in search(IndexStore(settings.home, db), [collection], QUERIES[0], top_k=10)] != before
    rebuilt = shared.reindex(collection_id, collection.index_generation)
    assert [r.chunk_id for r in search(shared, [collection], QUERIES[0], top_k=10)] == before
    assert len(rebuilt) == len(embedded.get(collection))
    assert_postings_match_chunks(db)


def test_merged_blocks_rank_as_before_and_stay_few(postgres, monkeypatch, tmp_path):
    """Documents uploaded one by one make a block per term each; merging keeps a term's blocks
    few and the ranking that of the embedded index, with removed chunks dropped from them."""
    settings, db = postgres
    monkeypatch.setattr(shared_index, "MAX_BLOCKS", 3)
    store, embedded = IndexStore(settings.home, db), IndexStore(settings.home, db, "embedded")
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "guide").id
    files = sorted(SEEDS.glob("*"))
    for path in files:
        ingest_paths(db, store, collection_id, [path])
        assert_postings_match_chunks(db)
    folder = tmp_path / "drafts"
    folder.mkdir()
    for i in range(4):  # and four documents pruned again
        (folder / f"d{i}.txt").write_text(f"초안 {i}\n\n데이터 보안 등급 검토 초안 {i}번.\n", encoding="utf-8")
        ingest_paths(db, store, collection_id, [folder])
    for path in folder.iterdir():
        path.unlink()
    ingest_paths(db, store, collection_id, [folder], prune=True)
    assert_postings_match_chunks(db)
    collection = reload(db, collection_id)
    with db.session() as session:
        most = session.scalar(select(func.max(text("n"))).select_from(
            select(SearchBlock.term_id, func.count().label("n")).group_by(SearchBlock.term_id).subquery()))
    assert most <= 3
    for query in QUERIES:
        assert [r.chunk_id for r in search(store, [collection], query, top_k=10)] == \
            [r.chunk_id for r in search(embedded, [collection], query, top_k=10)], query


def test_a_sync_in_many_rounds_builds_what_one_round_does(postgres, monkeypatch):
    """A bulk sync works in rounds, remembering term ids from one round to the next and merging
    blocks between them: with rounds of 7 chunks it ranks and scores as a build in one round."""
    settings, db = postgres
    store, embedded = IndexStore(settings.home, db), IndexStore(settings.home, db, "embedded")
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "guide").id
    ingest_paths(db, store, collection_id, [SEEDS])
    collection = reload(db, collection_id)
    one_round = {query: search(store, [collection], query, top_k=10) for query in QUERIES}
    with db.session() as session:
        terms = session.scalar(select(func.count()).select_from(text("search_terms")))
    monkeypatch.setattr(shared_index, "ADD_BATCH", 7)
    monkeypatch.setattr(shared_index, "MAX_BLOCKS", 3)
    rounds = -(-len(embedded.get(collection)) // 7)
    assert rounds > 10
    store.reindex(collection_id, collection.index_generation)
    assert_postings_match_chunks(db)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(text("search_terms"))) == terms
    for query in QUERIES:
        ours = search(store, [collection], query, top_k=10)
        assert [r.chunk_id for r in ours] == [r.chunk_id for r in one_round[query]], query
        assert [r.score for r in ours] == pytest.approx([r.score for r in one_round[query]])
        assert [r.chunk_id for r in ours] == [r.chunk_id for r in search(embedded, [collection], query, top_k=10)]


def test_what_one_host_changes_every_host_finds_at_once(postgres, tmp_path):
    _, db = postgres
    host_a = IndexStore(tmp_path / "a", db)  # two API hosts: nothing shared but the database
    host_b = IndexStore(tmp_path / "b", db)
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "rules").id
    notice = tmp_path / "notice.txt"
    notice.write_text("청사 출입 규정\n\n방문객은 안내데스크에서 임시 출입증을 받아야 합니다. "
                      "출입증은 당일 반납합니다.\n", encoding="utf-8")
    ingest_sources(db, host_a, collection_id, [SourceFile(notice, "upload:notice.txt", "notice.txt")])
    assert found(host_b, db, collection_id, "임시 출입증 반납") == ["notice.txt"]
    assert (tmp_path / "b" / "indexes").exists() is False  # host B keeps nothing on its disk

    # A new version in force from tomorrow: today host B still answers with the old one.
    tomorrow = date.today() + timedelta(days=1)
    notice.write_text("청사 출입 규정\n\n방문객은 모바일 사전 등록으로 전자 출입증을 발급받습니다.\n", encoding="utf-8")
    ingest_sources(db, host_a, collection_id, [SourceFile(notice, "upload:notice.txt", "notice.txt")],
                   effective_from=tomorrow)
    assert found(host_b, db, collection_id, "임시 출입증 반납") == ["notice.txt"]
    assert found(host_b, db, collection_id, "모바일 사전 등록 전자 출입증") in ([], ["notice.txt"])
    assert found(host_b, db, collection_id, "모바일 사전 등록 전자 출입증", as_of=tomorrow) == ["notice.txt"]
    hit = search(host_b, [reload(db, collection_id)], "모바일 사전 등록 전자 출입증", as_of=tomorrow)[0]
    assert hit.version == 2 and "모바일" in hit.text

    # A document removed through host B (a prune) is gone for host A at once.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "holiday.txt").write_text("휴가 규정\n\n연차 휴가는 부서장 승인 후 사용합니다.\n", encoding="utf-8")
    ingest_paths(db, host_b, collection_id, [folder])
    assert found(host_a, db, collection_id, "연차 휴가 승인") == [str(folder / "holiday.txt")]
    (folder / "holiday.txt").unlink()
    (folder / "other.txt").write_text("주차 규정\n\n주차는 지하 2층을 이용합니다.\n", encoding="utf-8")
    ingest_paths(db, host_b, collection_id, [folder], prune=True)
    assert found(host_a, db, collection_id, "연차 휴가 승인") == []
    assert_postings_match_chunks(db)

    # A deleted collection leaves no postings behind.
    with db.session() as session:
        session.delete(session.get(Collection, collection_id))
    host_a.forget(collection_id)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(SearchBlock)) == 0
        assert session.scalar(select(func.count()).select_from(SearchChunk)) == 0


def test_concurrent_ingests_from_two_hosts_keep_one_consistent_index(postgres, tmp_path):
    _, db = postgres
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "shared").id
    files = sorted(SEEDS.glob("*"))
    halves = [files[0::2], files[1::2]]
    errors: list[BaseException] = []

    def host(name: str, paths: list[Path]) -> None:
        try:
            store = IndexStore(tmp_path / name, db)
            for path in paths:
                ingest_paths(db, store, collection_id, [path])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=host, args=(name, half)) for name, half in zip("ab", halves, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors
    fresh = IndexStore(tmp_path / "c", db)
    collection = reload(db, collection_id)
    assert len(fresh.get(collection)) == len(IndexStore(tmp_path / "d", db, "embedded").get(collection))
    with db.session() as session:
        generation = session.scalar(text("SELECT generation FROM search_collections WHERE collection_id = :c"),
                                    {"c": collection_id})
    assert generation == collection.index_generation
    assert_postings_match_chunks(db)
    for query in QUERIES[:6]:
        assert [r.chunk_id for r in search(fresh, [collection], query)] == \
            [r.chunk_id for r in search(IndexStore(tmp_path / "d", db, "embedded"), [collection], query)]


def test_the_setting_is_checked(tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    db = prepare_database(settings)
    with pytest.raises(ValueError, match="needs a PostgreSQL database_url"):
        IndexStore(settings.home, db, "postgres")
    assert IndexStore(settings.home, db).shared is None
    db.dispose()


def test_a_search_does_not_wait_for_another_process_writing_the_collection(postgres, tmp_path):
    """While a host is writing a change of the collection (its upload not yet answered), another
    host's search answers at once from what is committed, and sees the change when it is."""
    _, db = postgres
    with db.session() as session:
        collection_id = kc.create(session, "DEMO", "rules").id
    first = tmp_path / "first.txt"
    first.write_text("주차 규정\n\n주차는 지하 2층을 이용합니다.\n", encoding="utf-8")
    host_a, host_b = IndexStore(tmp_path / "a", db), IndexStore(tmp_path / "b", db)
    ingest_sources(db, host_a, collection_id, [SourceFile(first, "upload:first.txt", "first.txt")])
    assert found(host_b, db, collection_id, "지하 주차") == ["first.txt"]
    second = tmp_path / "second.txt"
    second.write_text("휴가 규정\n\n연차 휴가는 부서장 승인 후 사용합니다.\n", encoding="utf-8")
    # Host A's sync of the next change, caught mid-way: the change is committed, its index lock held.
    locker = db.engine.connect()
    try:
        locker.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"),
                       {"c": shared_index.LOCK_CLASS, "k": collection_id})
        with db.session() as session:
            from hanchang.knowledge.ingest import ingest
            ingest(session, session.get(Collection, collection_id),
                   [SourceFile(second, "upload:second.txt", "second.txt")])
        started = time.monotonic()
        assert found(host_b, db, collection_id, "지하 주차") == ["first.txt"]
        assert found(host_b, db, collection_id, "연차 휴가 승인") == []  # not yet indexed
        assert time.monotonic() - started < 5
    finally:
        locker.rollback()
        locker.close()
    assert found(host_b, db, collection_id, "연차 휴가 승인") == ["second.txt"]
