"""A window conversation keeps the grade of what went into it: history never carries 민감 content
to a model that may not see it (proved by what the external upstream received)."""

from __future__ import annotations

import pytest

from hanchang.core.grades import Grade
from hanchang.knowledge import collections as kc
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest import SourceFile
from hanchang.knowledge.operations import ingest_sources
from test_web_sessions import add_user, sign_in

SECRET = "내부 감사 결과 보고서: 예산 전용 의혹 3건 확인."


@pytest.fixture
def two_zones(platform_factory, upstreams, tmp_path):
    internal, external = upstreams

    def make(reroute: bool):
        platform = platform_factory({
            "models": [
                {"name": "internal-a", "backend": "openai", "base_url": internal.base_url, "zone": "internal",
                 "max_grade": "C", "max_retries": 0},
                {"name": "external-b", "backend": "openai", "base_url": external.base_url, "zone": "external",
                 "max_grade": "O", "max_retries": 0},
            ],
            "policy": {"reroute": reroute, "preferred_internal": ["internal-a"]},
        })
        add_user(platform, "hong")
        document = tmp_path / "감사.txt"
        document.write_text(SECRET, encoding="utf-8")
        with platform.db.session() as session:
            collection = kc.create(session, "MOIS", "감사자료", grade=Grade.SENSITIVE).id
        ingest_sources(platform.db, IndexStore(platform.settings.home, platform.db), collection,
                       [SourceFile(document, "upload:감사.txt", "감사.txt")])
        return platform, collection

    return make, internal, external


def ask(client, csrf, conversation, **body) -> str:
    return client.post(f"/api/conversations/{conversation}/messages", headers={"X-CSRF-Token": csrf},
                       json=body).text


def sent_text(upstream) -> str:
    return " ".join(str(m.get("content")) for b in upstream.behaviour.received for m in b.get("messages", ()))


@pytest.mark.parametrize("reroute", [False, True])
def test_an_answer_grounded_on_s_sources_never_reaches_an_external_model(two_zones, reroute):
    make, internal, external = two_zones
    platform, collection = make(reroute)
    client, csrf = sign_in(platform, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]

    first = ask(client, csrf, conversation, content="감사 결과 알려줘", model="internal-a", data_grade="O",
                collections=[collection])
    assert "event: done" in first and SECRET[:10] in sent_text(internal)
    messages = client.get(f"/api/conversations/{conversation}/messages").json()["data"]
    assert [(m["role"], m["grade"]) for m in messages] == [("user", "O"), ("assistant", "S")]

    second = ask(client, csrf, conversation, content="다른 이야기 해줘", model="external-b", data_grade="O")
    assert external.behaviour.received == []  # nothing of this conversation left for outside
    if reroute:
        assert "event: done" in second and "내부망" in second  # answered inside, and the user is told
    else:
        assert "event: failed" in second and "민감" in second
    after = client.get(f"/api/conversations/{conversation}/messages").json()["data"]
    assert after[-1]["grade"] == ("S" if reroute else "O") or after[-1]["role"] == "notice"


def test_a_question_declared_s_keeps_later_turns_s(two_zones):
    make, _, external = two_zones
    platform, _ = make(False)
    client, csrf = sign_in(platform, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    assert "event: done" in ask(client, csrf, conversation, content="민감한 질문", model="internal-a", data_grade="S")
    refused = ask(client, csrf, conversation, content="이어서", model="external-b", data_grade="O")
    assert "event: failed" in refused and external.behaviour.received == []
    # A new conversation starts clean.
    fresh = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    assert "event: done" in ask(client, csrf, fresh, content="공개 질문", model="external-b", data_grade="O")
    assert "민감한 질문" not in sent_text(external)
