"""How much source text a grounded answer may give its model, so it answers within the SLO.

The guideline's target (3.2.5) is 90 % of Q&A answered within 7 s. On a CPU the cost is
reading the prompt: the embedded 0.5B model reads ~150 tokens/s on 2 cores, so 2,300 tokens
of passages alone took 15 s. The budget is what the model reads within the first-token
target at its measured speed (or a configured `grounding_tokens`), never more than half its
context window — and never less than `STEADY_SOURCE_TOKENS`: sized from the speed alone, a
busy machine cut the passage that held the answer (issue 25), so what a slow model reads stays
the same under load, and the SLO is met by reading only the sentences that answer (`excerpts`),
the fixed instructions cached by the engine, and a bounded answer. The answer's default length
is what the model writes in the rest of the target, at least `STEADY_ANSWER_TOKENS`. A model
whose speed is not known yet (a fast upstream before its first streamed answer) gets the
context-window share.
"""

from __future__ import annotations

from dataclasses import dataclass

from hanchang.core.models import ModelSpec

WHOLE_DOCUMENT_SHARE = 0.5  # of the context window, leaving room for the question and answer
CHARS_PER_TOKEN = 1.5  # Korean text in Qwen-family tokenizers (sample corpus: 1.6)
PROMPT_OVERHEAD_TOKENS = 40  # chat template, source headers: read on every call
STEADY_SOURCE_TOKENS = 400  # what a slow model reads whatever the load (~600 characters of Korean)
STEADY_ANSWER_TOKENS = 160  # a short grounded answer; the platform adds the quote and markers
SPEED_MARGIN = 1.0  # 1.0: the measured speed as it is (lower it to aim under the target)


@dataclass(frozen=True)
class ReadingBudget:
    source_tokens: int  # the passages may take this many prompt tokens
    answer_tokens: int | None  # default cap on the answer when the caller set none
    basis: str  # "configured" | "measured" | "context window"

    @property
    def source_chars(self) -> int:
        return int(self.source_tokens * CHARS_PER_TOKEN)


def reading_budget(spec: ModelSpec, question: str, *, prefill_tps: float | None,
                   decode_tps: float | None, first_token_s: float, answer_s: float) -> ReadingBudget:
    share = int(spec.context_window * WHOLE_DOCUMENT_SHARE)
    configured = spec.extra.get("grounding_tokens")
    if configured:
        return ReadingBudget(min(int(configured), share), None, "configured")
    if not prefill_tps:
        return ReadingBudget(share, None, "context window")
    question_tokens = int(len(question) / CHARS_PER_TOKEN) + 1
    readable = int(SPEED_MARGIN * prefill_tps * first_token_s) - PROMPT_OVERHEAD_TOKENS - question_tokens
    answer = None
    if decode_tps:
        answer = max(STEADY_ANSWER_TOKENS, int(decode_tps * max(0.0, answer_s - first_token_s)))
    return ReadingBudget(min(share, max(STEADY_SOURCE_TOKENS, readable)), answer, "measured")
