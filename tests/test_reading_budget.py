"""Grounding sized to what the answering model reads within the SLO, and passages cut to fit."""

from __future__ import annotations

from hanchang.assist.reading_budget import STEADY_ANSWER_TOKENS, STEADY_SOURCE_TOKENS, reading_budget
from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec, Zone
from hanchang.knowledge.excerpts import GAP, HEADER_CHARS, fit
from hanchang.knowledge.search import SearchResult

SPEC = ModelSpec("m", "openai", Zone.INTERNAL, Grade.CLASSIFIED, context_window=4096)


def budget(spec=SPEC, prefill=None, decode=None, question="데이터 보안 등급은?"):
    return reading_budget(spec, question, prefill_tps=prefill, decode_tps=decode, first_token_s=2.0, answer_s=7.0)


def test_a_model_reads_what_it_can_within_the_first_token_target_and_never_less_under_load():
    fast = budget(prefill=1000, decode=100)
    assert fast.basis == "measured"
    assert fast.source_tokens == 1000 * 2 - 40 - 8  # overhead, and an 11-character question
    assert fast.answer_tokens == 100 * 5
    assert budget(prefill=100_000).source_tokens == 2048  # a very fast model: half its context window
    # A slow model (the embedded one on 2 cores) reads the same quiet or busy: the passage that
    # holds the answer is not cut because other processes use the CPU.
    quiet, busy = budget(prefill=150, decode=30), budget(prefill=60, decode=12)
    assert quiet.source_tokens == busy.source_tokens == STEADY_SOURCE_TOKENS
    assert quiet.answer_tokens == busy.answer_tokens == STEADY_ANSWER_TOKENS


def test_configured_or_unknown_speed():
    assert budget().basis == "context window" and budget().source_tokens == 2048 and budget().answer_tokens is None
    fixed = ModelSpec("m", "openai", Zone.INTERNAL, Grade.CLASSIFIED, extra={"grounding_tokens": 300})
    assert budget(fixed, prefill=150).source_tokens == 300 and budget(fixed).basis == "configured"


def result(text: str, chunk_id: int) -> SearchResult:
    return SearchResult(text, "a.txt", "지침", "", None, 1.0, "O", 1, None, False, "c", 1, chunk_id)


NOISE = "공공부문은 여러 가지 사업을 추진하고 있으며 관련 예산을 편성하였다. " * 4


def test_passages_within_budget_stay_whole():
    results = [result("짧은 글.", 1)]
    assert fit(results, "데이터", 1000) == results


def test_over_budget_keeps_the_sentences_that_answer_in_order():
    answer = "데이터 보안 등급은 기밀(C), 민감(S), 공개(O) 세 가지이다."
    results = [result(NOISE + "\n" + answer + "\n" + "각 등급별 보호 조치를 마련한다.\n" + NOISE, 1),
               result(NOISE + "\n예산은 매년 늘어난다.", 2)]
    fitted = fit(results, "데이터 보안 등급 세 가지는?", 150)
    assert len(fitted) == 1 and fitted[0].chunk_id == 1
    assert answer in fitted[0].text
    assert sum(len(r.text) + HEADER_CHARS + len(GAP) for r in fitted) <= 150 + len(GAP)
    # The next line of the list came along, in document order.
    assert fitted[0].text.index(answer) < fitted[0].text.index("각 등급별")


def test_nothing_relevant_means_no_passage():
    assert fit([result(NOISE, 1)], "양자컴퓨터", 50) == []
