"""Grounded answers the platform vouches for, proved against a recording upstream: markers placed
by the platform (streamed sentence by sentence too), the source sentence quoted, invented numbers
flagged, "not found" said without asking a model, and appendix table rows kept out of section
paths."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import start_upstream
from hanchang.assist.grounded_answer import Grounding, SentenceStream
from hanchang.core.principal import Role
from hanchang.knowledge.parsers.headings import numbered_rows
from hanchang.knowledge.parsers.text import blocks_from_lines
from hanchang.store import accounts

RULES = ("제3조(등급) 업무 중요도에 따라 기밀, 민감, 공개의 3개 등급으로 분류한다.\n"
         "제4조(응답) 문답 서비스의 90% 이상은 7초 이내에 답한다.\n"
         "제5조(화재) 2018년 통신구 화재로 약 79m가 소실되었다.\n")


@pytest.fixture
def grounded(platform_factory):
    upstream = start_upstream()
    platform = platform_factory({"models": [{"name": "int", "backend": "openai", "base_url": upstream.base_url,
                                             "zone": "internal", "max_grade": "C", "max_retries": 0}]})
    with platform.db.session() as session:
        accounts.create_user(session, "MOIS", "hong", Role.AGENCY_ADMIN)
        platform.admin = accounts.create_key(session, "MOIS", "hong").secret
    made = httpx.post(platform.url + "/api/collections", headers=platform.headers(platform.admin),
                      json={"name": "규정"}, timeout=30)
    httpx.post(platform.url + f"/api/collections/{made.json()['id']}/documents",
               headers=platform.headers(platform.admin), files=[("files", ("rules.txt", RULES.encode()))],
               timeout=60).raise_for_status()
    platform.upstream = upstream
    yield platform
    upstream.server.stop()


def ask(platform, question, stream=False, **extra):
    body = {"model": "int", "messages": [{"role": "user", "content": question}], "collections": ["규정"],
            "stream": stream, **extra}
    if not stream:
        return httpx.post(platform.v1 + "/chat/completions", json=body, headers=platform.headers(), timeout=60).json()
    chunks = []
    with httpx.stream("POST", platform.v1 + "/chat/completions", json=body, headers=platform.headers(),
                      timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


def test_the_platform_cites_each_sentence_and_quotes_the_source(grounded):
    grounded.upstream.behaviour.reply = "데이터 보안 등급은 기밀, 민감, 공개입니다. 문답 서비스는 빨리 답해야 합니다."
    result = ask(grounded, "데이터 보안 등급 세 가지는?")
    text = result["choices"][0]["message"]["content"]
    assert text.startswith("데이터 보안 등급은 기밀, 민감, 공개입니다 [1].")
    check = result["hanchang"]["answer_check"]
    assert check["cited"] == [1] and check["invented_numbers"] == [] and not check["needs_check"]
    sent = grounded.upstream.behaviour.received[-1]
    assert sent["temperature"] == 0  # grounded answers are read, not invented
    system = sent["messages"][0]["content"]
    assert "[핵심 문장] [1]" in system and "3개 등급으로 분류한다" in system.split("[핵심 문장]")[1]
    # A caller's own temperature stands.
    ask(grounded, "데이터 보안 등급 세 가지는?", temperature=0.7)
    assert grounded.upstream.behaviour.received[-1]["temperature"] == 0.7


def test_a_streamed_answer_goes_out_cited_sentence_by_sentence_and_flags_invented_numbers(grounded):
    grounded.upstream.behaviour.reply = "통신구 화재로 약 179m가 소실되었습니다. 원인은 자료에 있습니다."
    chunks = ask(grounded, "통신구 화재로 소실된 길이는?", stream=True)
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")]
    text = "".join(pieces)
    assert "통신구 화재로 약 179m가 소실되었습니다 [1]." in text
    assert "근거: “제5조(화재) 2018년 통신구 화재로 약 79m가 소실되었다.” [1]" in text
    assert "※ 확인 필요" in text and "179m" in text.split("※ 확인 필요")[1]
    assert not any("[1]" in p and "통신구" not in p for p in pieces[:1])  # the first piece is a whole sentence
    last = next(c for c in reversed(chunks) if c.get("hanchang"))
    assert last["hanchang"]["answer_check"]["invented_numbers"] == ["179m"]
    assert len(grounded.upstream.behaviour.received) == 1  # a stream is flagged, never asked twice
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1


def test_nothing_relevant_is_said_without_asking_a_model(grounded):
    before = len(grounded.upstream.behaviour.received)
    result = ask(grounded, "2030년 데이터 보안 등급 예산은?")  # the sources never say 2030
    assert "찾지 못했습니다" in result["choices"][0]["message"]["content"]
    assert len(grounded.upstream.behaviour.received) == before


def test_sentences_are_matched_on_morphemes_and_unsupported_markers_dropped():
    grounding = Grounding("보안 등급은?", [(1, "업무 중요도에 따라 기밀, 민감, 공개의 3개 등급으로 분류한다."),
                                          (2, "서울시는 챗봇 사업을 2025년에 시작했다.")])
    shown = grounding.finish("보안 등급은 기밀, 민감, 공개입니다[2]. 오늘 날씨는 맑습니다[1].")
    assert shown.startswith("보안 등급은 기밀, 민감, 공개입니다 [1]. 오늘 날씨는 맑습니다.")
    assert grounding.check.markers_dropped == 2 and grounding.check.uncited_sentences == 1
    stream = SentenceStream(Grounding("보안 등급은?", [(1, "기밀, 민감, 공개의 3개 등급으로 분류한다.")]))
    out = [stream.feed(p) for p in ["보안 등급은 기", "밀, 민감, 공개", "입니다. 다", "음"]]
    assert out[:2] == ["", ""] and out[2] == "보안 등급은 기밀, 민감, 공개입니다 [1]. "


def test_numbered_rows_of_an_appendix_table_are_not_headings():
    lines = ["3 초거대 AI 도입 절차", "본문입니다.", "", "18 행정 계약업무", "계약 검토 지원", "서울시설공단",
             "19 행정 문서작성 초거대 AI를 이용한 문서 자동 생성 기능", "서울시설공단", "20 행정 민원 응대", "끝"]
    assert numbered_rows(lines) == {3, 6, 8}
    blocks = blocks_from_lines(lines, markdown=False)
    headings = [b.text for b in blocks if b.kind.name == "HEADING"]
    assert headings == ["3 초거대 AI 도입 절차"]
