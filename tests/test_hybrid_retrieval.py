"""Dense vectors from a configured embedding model join BM25; the grade policy applies to them."""

from __future__ import annotations

import json
from datetime import date

import httpx
import numpy as np
from sqlalchemy import select

from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.tables import Chunk

RULE = "제9조(출장) 국외 출장은 30일 전에 신청한다."


def setup(platform_factory, upstream, zone):
    platform = platform_factory({
        "models": [
            {"name": "int", "backend": "openai", "base_url": upstream.base_url, "zone": "internal",
             "max_grade": "C"},
            {"name": "embedder", "backend": "openai", "base_url": upstream.base_url, "zone": zone,
             "max_grade": "C" if zone == "internal" else "O", "kind": "embedding"},
        ],
        "knowledge": {"embedding_model": "embedder"},
    })
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "lee", Role.AGENCY_ADMIN)
        platform.admin = accounts.create_key(session, "MOIS", "lee").secret
    return platform


def call(platform, method, path, **kwargs):
    return httpx.request(method, platform.url + path, headers=platform.headers(platform.admin),
                         timeout=60, **kwargs)


def test_chunks_get_vectors_and_search_fuses_them(platform_factory, upstream):
    platform = setup(platform_factory, upstream, "internal")
    cid = call(platform, "POST", "/api/collections", json={"name": "규정"}).json()["id"]
    uploaded = call(platform, "POST", f"/api/collections/{cid}/documents",
                    files=[("files", ("출장.txt", RULE.encode()))])
    assert uploaded.json()["results"][0]["status"] == "ingested"
    with platform.db.session() as session:
        vectors = [np.frombuffer(e, dtype=np.float32) for e in session.scalars(select(Chunk.embedding))]
    assert vectors and all(v.shape == (16,) for v in vectors)
    index = platform.server._server.config.app.state.platform.knowledge
    upstream.behaviour.received.clear()
    results = call(platform, "GET", "/api/search", params={"q": "국외 출장 신청 기한"}).json()["results"]
    assert results[0]["text"] == RULE
    assert any(body.get("input") == ["국외 출장 신청 기한"] for body in upstream.behaviour.received)
    with platform.db.session() as session:
        from hanchang.store.tables import Collection

        assert index.get(session.get(Collection, cid)).vectors is not None


def test_sensitive_documents_are_not_sent_to_an_external_embedder(platform_factory, upstream):
    platform = setup(platform_factory, upstream, "external")
    cid = call(platform, "POST", "/api/collections", json={"name": "인사", "grade": "S"}).json()["id"]
    response = call(platform, "POST", f"/api/collections/{cid}/documents",
                    files=[("files", ("인사.txt", RULE.encode()))])
    assert response.status_code == 422
    assert "임베딩 불가" in response.json()["results"][0]["reason"]
    assert RULE not in json.dumps(upstream.behaviour.received, ensure_ascii=False)
    # A sensitive question is answered from lexical search alone; its text never goes out.
    open_cid = call(platform, "POST", "/api/collections", json={"name": "공개"}).json()["id"]
    call(platform, "POST", f"/api/collections/{open_cid}/documents",
         files=[("files", ("출장.txt", RULE.encode()))])
    upstream.behaviour.received.clear()
    answer = call(platform, "POST", "/v1/chat/completions", json={
        # as_of makes it search (not whole documents), so the query would be embedded if allowed
        "model": "int", "collections": [open_cid], "data_grade": "S", "as_of": str(date.today()),
        "messages": [{"role": "user", "content": "민감한 질문: 국외 출장 신청 기한"}]})
    assert answer.status_code == 200 and answer.json()["citations"][0]["text"] == RULE
    assert not any("input" in body for body in upstream.behaviour.received)
