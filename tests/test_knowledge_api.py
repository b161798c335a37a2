"""Knowledge bases over HTTP: agency isolation in every query, uploads, grades, grounded answers."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from conftest import SHARED, needs_shared
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import AuditRecord

SECRET_RULE = "제7조(보안) 비밀번호는 90일마다 변경한다."


@pytest.fixture
def kb(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory({"models": [
        {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
         "max_grade": "C", "context_window": 4096},
        {"name": "ext", "backend": "openai", "base_url": external.base_url, "zone": "external",
         "max_grade": "O", "context_window": 4096},
    ], "policy": {"reroute": False}})
    with platform.db.session() as session:
        accounts.create_agency(session, "KOSIS", "통계청")
        accounts.create_user(session, "MOIS", "admin-mois", Role.AGENCY_ADMIN)
        accounts.create_user(session, "KOSIS", "admin-kosis", Role.AGENCY_ADMIN)
        accounts.create_user(session, "KOSIS", "park", Role.USER)
        keys = {
            "mois_admin": accounts.create_key(session, "MOIS", "admin-mois").secret,
            "kosis_admin": accounts.create_key(session, "KOSIS", "admin-kosis").secret,
            "kosis_user": accounts.create_key(session, "KOSIS", "park").secret,
        }
    platform.keys = keys
    return platform


def api(platform, method, path, key, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(key), timeout=60, **kwargs)


def make_collection(platform, key, name, grade="O"):
    response = api(platform, "POST", "/api/collections", key, json={"name": name, "grade": grade})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def upload(platform, key, collection_id, *files, grade=None):
    data = {"grade": grade} if grade else {}
    return api(platform, "POST", f"/api/collections/{collection_id}/documents", key, data=data,
               files=[("files", (name, content)) for name, content in files])


def test_agency_isolation_is_enforced_in_every_query(kb):
    mois = make_collection(kb, kb.keys["mois_admin"], "복무")
    upload(kb, kb.keys["mois_admin"], mois, ("규정.txt", SECRET_RULE.encode()))
    kosis_user = kb.keys["kosis_user"]
    assert [c["name"] for c in api(kb, "GET", "/api/collections", kosis_user).json()["data"]] == []
    for method, path in [("GET", f"/api/collections/{mois}/documents"),
                         ("POST", f"/api/collections/{mois}/reindex"),
                         ("DELETE", f"/api/collections/{mois}")]:
        assert api(kb, method, path, kb.keys["kosis_admin"]).status_code == 404, path
    found = api(kb, "GET", "/api/search", kosis_user, params={"q": "비밀번호 변경"}).json()["results"]
    assert found == []
    assert api(kb, "GET", "/api/search", kosis_user, params={"q": "x", "collection": mois}).status_code == 404
    grounded = api(kb, "POST", "/v1/chat/completions", kosis_user, json={
        "model": "int", "collections": [mois], "messages": [{"role": "user", "content": "비밀번호 주기"}]})
    assert grounded.status_code == 404 and grounded.json()["error"]["code"] == "collection_not_found"
    # The owner agency sees it; a document id of it is not reachable from the other agency either.
    docs = api(kb, "GET", f"/api/collections/{mois}/documents", kb.keys["mois_admin"]).json()["data"]
    assert api(kb, "DELETE", f"/api/documents/{docs[0]['id']}", kb.keys["kosis_admin"]).status_code == 404


def test_common_collections_are_read_by_all_but_written_by_their_admins(kb):
    with kb.db.session() as session:
        accounts.create_user(session, "MOIS", "root", Role.PLATFORM_ADMIN)
        root = accounts.create_key(session, "MOIS", "root").secret
    common = api(kb, "POST", "/api/collections", root, json={"name": "공통법령", "is_common": True})
    assert common.status_code == 201
    upload(kb, root, common.json()["id"], ("법령.txt", "개인정보 보호법 제15조 수집·이용 동의".encode()))
    listed = api(kb, "GET", "/api/collections", kb.keys["kosis_user"]).json()["data"]
    assert [(c["name"], c["is_common"], c["writable"]) for c in listed] == [("공통법령", True, False)]
    hits = api(kb, "GET", "/api/search", kb.keys["kosis_user"], params={"q": "수집 이용 동의"}).json()
    assert hits["results"][0]["collection"] == "공통법령"
    assert upload(kb, kb.keys["kosis_admin"], common.json()["id"], ("x.txt", b"x")).status_code == 403
    refused = api(kb, "POST", "/api/collections", kb.keys["kosis_admin"],
                  json={"name": "n", "is_common": True})
    assert refused.status_code == 403
    assert api(kb, "POST", "/api/collections", kb.keys["kosis_user"], json={"name": "n"}).status_code == 403


@needs_shared
def test_uploads_report_each_file_and_failures_change_nothing(kb):
    key = kb.keys["mois_admin"]
    cid = make_collection(kb, key, "문서")
    hwp = (SHARED / "samples" / "hwp" / "sample-5017.hwp").read_bytes()
    locked = (SHARED / "samples" / "hwp" / "password-12345.hwp").read_bytes()
    response = upload(kb, key, cid, ("예제.hwp", hwp), ("잠김.hwp", locked), ("도구.exe", b"MZ..."))
    assert response.status_code == 200
    by_name = {r["name"]: r for r in response.json()["results"]}
    assert by_name["예제.hwp"]["status"] == "ingested" and by_name["예제.hwp"]["chunks"] >= 1
    assert by_name["잠김.hwp"]["status"] == "failed" and "암호가 걸린 문서" in by_name["잠김.hwp"]["reason"]
    assert by_name["도구.exe"]["status"] == "failed"
    before = api(kb, "GET", f"/api/collections/{cid}/documents", key).json()["data"]
    failed = upload(kb, key, cid, ("잠김.hwp", locked))
    assert failed.status_code == 422
    assert api(kb, "GET", f"/api/collections/{cid}/documents", key).json()["data"] == before
    # Re-uploading the same file is "unchanged"; a renamed copy of a HWPX is sniffed by content.
    assert upload(kb, key, cid, ("예제.hwp", hwp)).json()["results"][0]["status"] == "unchanged"
    hwpx = (SHARED / "samples" / "hwpx" / "error__20240626__no_manifest.hwpx").read_bytes()
    assert upload(kb, key, cid, ("입법예고.hwpx", hwpx)).json()["results"][0]["status"] == "ingested"


def test_grade_changes_are_admin_only_and_audited(kb):
    key = kb.keys["kosis_admin"]
    cid = make_collection(kb, key, "통계")
    by_user = api(kb, "PATCH", f"/api/collections/{cid}", kb.keys["kosis_user"], json={"grade": "S"})
    assert by_user.status_code == 403
    changed = api(kb, "PATCH", f"/api/collections/{cid}", key, json={"grade": "S"})
    assert changed.status_code == 200 and changed.json()["grade"] == "S"
    kb.usage_rows(at_least=0)
    with kb.db.session() as session:
        actions = [(r.action, json.loads(r.detail)) for r in session.scalars(
            select(AuditRecord).where(AuditRecord.category == "admin").order_by(AuditRecord.id))]
    assert ("collections.grade", {"collection": "통계", "before": "O", "after": "S"}) in actions


def test_a_reindex_is_writers_only_audited_and_keeps_search_answering(kb):
    key = kb.keys["kosis_admin"]
    cid = make_collection(kb, key, "인구")
    assert upload(kb, key, cid, ("인구.txt", "인구 통계\n\n출생아 수는 매월 집계합니다.\n".encode())).status_code == 200
    assert api(kb, "POST", f"/api/collections/{cid}/reindex", kb.keys["kosis_user"]).status_code == 403
    rebuilt = api(kb, "POST", f"/api/collections/{cid}/reindex", key)
    assert rebuilt.status_code == 200 and rebuilt.json() == {"id": cid, "chunks": 1}
    found = api(kb, "GET", "/api/search", key, params={"q": "출생아 집계", "collection": str(cid)})
    assert [r["source"] for r in found.json()["results"]] == ["인구.txt"]
    with kb.db.session() as session:
        actions = [(r.action, json.loads(r.detail)) for r in session.scalars(
            select(AuditRecord).where(AuditRecord.category == "admin").order_by(AuditRecord.id))]
    assert actions.count(("collections.reindex", {"collection": "인구"})) == 1


def ask(kb, key, model, collections, question, stream=False):
    return api(kb, "POST", "/v1/chat/completions", key, json={
        "model": model, "collections": collections, "stream": stream,
        "messages": [{"role": "user", "content": question}]})


def test_grounded_answer_cites_its_sources(kb, upstreams):
    internal, _ = upstreams
    key = kb.keys["mois_admin"]
    cid = make_collection(kb, key, "지침")
    upload(kb, key, cid, ("보안지침.txt", f"3.2.1 데이터 보안 등급\n{SECRET_RULE}\n".encode()))
    response = ask(kb, key, "int", ["지침"], "비밀번호는 얼마나 자주 바꾸나요?")
    assert response.status_code == 200
    body = response.json()
    (citation,) = body["citations"]
    assert citation["index"] == 1 and citation["source"] == "보안지침.txt"
    assert citation["section"] == "3.2.1 데이터 보안 등급" and citation["grade"] == "O"
    prompt = internal.behaviour.received[-1]["messages"][0]["content"]
    assert "[1] 보안지침" in prompt and SECRET_RULE in prompt and "[자료]" in prompt
    with httpx.stream("POST", kb.v1 + "/chat/completions", headers=kb.headers(key), timeout=30, json={
            "model": "int", "collections": [cid], "stream": True,
            "messages": [{"role": "user", "content": "비밀번호 변경 주기"}]}) as streamed:
        events = [json.loads(x[5:]) for x in streamed.iter_lines() if x.startswith("data: {")]
    assert events[-1]["citations"][0]["source"] == "보안지침.txt"


def test_no_sources_means_a_plain_korean_answer(kb, upstreams):
    internal, _ = upstreams
    key = kb.keys["mois_admin"]
    cid = make_collection(kb, key, "빈곳")
    response = ask(kb, key, "int", [cid], "우주 정거장 예산은?")
    assert response.status_code == 200 and response.json()["citations"] == []
    assert "찾지 못했습니다" in response.json()["choices"][0]["message"]["content"]
    with httpx.stream("POST", kb.v1 + "/chat/completions", headers=kb.headers(key), timeout=30, json={
            "model": "int", "collections": [cid], "stream": True,
            "messages": [{"role": "user", "content": "우주 정거장 예산은?"}]}) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        lines = [x for x in streamed.iter_lines() if x.startswith("data: ")]
    events = [json.loads(x[6:]) for x in lines[:-1]]
    assert "찾지 못했습니다" in events[0]["choices"][0]["delta"]["content"] and lines[-1] == "data: [DONE]"
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[-1]["citations"] == []
    assert all("usage" not in e for e in events)  # not asked for (stream_options.include_usage)
    with httpx.stream("POST", kb.v1 + "/chat/completions", headers=kb.headers(key), timeout=30, json={
            "model": "int", "collections": [cid], "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "우주 정거장 예산은?"}]}) as streamed:
        events = [json.loads(x[6:]) for x in streamed.iter_lines() if x.startswith("data: {")]
    assert events[-1]["usage"]["total_tokens"] == 0 and events[-1]["citations"] == []
    assert internal.behaviour.received == []


def test_grounding_on_a_sensitive_document_raises_the_request(kb, upstreams):
    _, external = upstreams
    key = kb.keys["mois_admin"]
    cid = make_collection(kb, key, "인사", grade="S")
    upload(kb, key, cid, ("인사규정.txt", SECRET_RULE.encode()))
    for stream in (False, True):
        refused = ask(kb, key, "ext", ["인사"], "비밀번호 변경 주기", stream=stream)
        assert refused.status_code == 403 and "민감(S)" in refused.json()["error"]["message"]
    assert external.behaviour.received == []
    allowed = ask(kb, key, "int", ["인사"], "비밀번호 변경 주기")
    assert allowed.status_code == 200 and allowed.headers["x-hanchang-data-grade"] == "S"
    assert "passage doc:" in allowed.json()["hanchang"]["grade_reason"]
