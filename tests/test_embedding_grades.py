"""What an embedding model may see is decided by the passage grade (collection and document),
never by the grade an upload form sends (proved by what the external upstream received)."""

from __future__ import annotations

import httpx
import pytest

from hanchang.core.grades import Grade, passage_grade
from hanchang.core.principal import Role

SECRET = "감사원 지적사항: 예산 전용 3건, 계약 분할 2건."


@pytest.fixture
def external_embedder(platform_factory, upstreams):
    internal, external = upstreams
    platform = platform_factory({
        "models": [
            {"name": "int", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
             "max_grade": "C"},
            {"name": "ext-embed", "backend": "openai", "base_url": external.base_url, "zone": "external",
             "max_grade": "O", "kind": "embedding"},
        ],
        "knowledge": {"embedding_model": "ext-embed"},
    })
    platform.admin_key = platform.new_user_key("admin", Role.AGENCY_ADMIN)
    return platform, external


def new_collection(platform, name: str, grade: str) -> int:
    reply = httpx.post(platform.url + "/api/collections", headers=platform.headers(platform.admin_key), timeout=30,
                       json={"name": name, "grade": grade})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def test_the_passage_grade_is_the_higher_of_collection_and_document():
    assert passage_grade("S", "O") is Grade.SENSITIVE
    assert passage_grade(Grade.OPEN, "C") is Grade.CLASSIFIED
    assert passage_grade("O", "O") is Grade.OPEN


@pytest.mark.parametrize("form_grade", ["O", None])
def test_an_upload_labelled_open_into_an_s_collection_is_never_embedded_outside(external_embedder, form_grade):
    platform, external = external_embedder
    headers = platform.headers(platform.admin_key)
    collection = new_collection(platform, "감사", "S")
    reply = httpx.post(f"{platform.url}/api/collections/{collection}/documents", headers=headers, timeout=60,
                       data={"grade": form_grade} if form_grade else {},
                       files=[("files", ("감사.txt", SECRET.encode()))])
    assert not any(SECRET[:8] in str(body.get("input")) for body in external.behaviour.received)
    result = reply.json()["results"][0]
    assert result["status"] == "failed" and "임베딩" in result["reason"]


def test_an_open_upload_into_an_open_collection_is_embedded(external_embedder):
    platform, external = external_embedder
    headers = platform.headers(platform.admin_key)
    collection = new_collection(platform, "공개", "O")
    reply = httpx.post(f"{platform.url}/api/collections/{collection}/documents", headers=headers, timeout=60,
                       files=[("files", ("공개.txt", "공개 자료: 민원 처리 기간은 7일입니다.".encode()))])
    assert reply.json()["results"][0]["status"] == "ingested"
    assert any("민원 처리 기간" in str(body.get("input")) for body in external.behaviour.received)


@pytest.mark.parametrize("bad", ["secret", "null", "   "])
def test_an_unknown_upload_grade_is_a_clear_422(external_embedder, bad):
    platform, _ = external_embedder
    headers = platform.headers(platform.admin_key)
    collection = new_collection(platform, "x", "O")
    reply = httpx.post(f"{platform.url}/api/collections/{collection}/documents", headers=headers, timeout=60,
                       data={"grade": bad}, files=[("files", ("a.txt", "내용".encode()))])
    assert reply.status_code == 422 and "O (공개)" in reply.json()["error"]["message"]


def test_embeddings_at_ingest_and_query_are_gateway_calls_on_the_record(external_embedder):
    from sqlalchemy import select

    from hanchang.store.tables import AuditRecord, UsageRecord

    platform, external = external_embedder
    headers = platform.headers(platform.admin_key)
    collection = httpx.post(platform.url + "/api/collections", headers=headers, timeout=30,
                            json={"name": "공개자료", "grade": "O"}).json()["id"]
    httpx.post(f"{platform.url}/api/collections/{collection}/documents", headers=headers, timeout=60,
               files=[("files", ("안내.txt", "민원 처리 기간은 7일입니다. 연락처 010-2345-6789".encode()))])
    httpx.get(platform.url + "/api/search", headers=headers, timeout=30, params={"q": "민원 처리 기간"})
    platform.usage_rows(at_least=2)
    with platform.db.session() as session:
        usage = {(u.endpoint, u.user_name, u.model_used, u.status) for u in session.scalars(select(UsageRecord))}
        audit = {(a.action, a.user_name, a.pii_mode) for a in session.scalars(select(AuditRecord))
                 if a.category == "ai"}
    assert ("embeddings.ingest", "admin", "ext-embed", 200) in usage
    assert ("embeddings.query", "admin", "ext-embed", 200) in usage
    assert ("embeddings.ingest", "admin", "pseudonymize") in audit
    assert "010-2345-6789" not in str(external.behaviour.received)  # guarded like any external call
