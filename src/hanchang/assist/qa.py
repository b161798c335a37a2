"""질의응답: grounded answers from the caller's knowledge bases, with numbered citations.

If every document of the chosen collections fits the answering model's reading budget
(`reading_budget`: what it reads within the SLO), they go in whole; otherwise the best
passages are retrieved and, if still too long, cut to their best sentences (`excerpts`).
Each passage's grade joins the request's grade, so grounding
on a 민감 document makes the request 민감. With nothing relevant found, the answer says so
in Korean instead of letting the model guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.knowledge import excerpts
from hanchang.knowledge.embedder import Embedder
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.search import SearchResult, search, whole_collections
from hanchang.store.tables import Collection

TOP_K = 5
NO_SOURCES = ("선택한 지식베이스에서 질문과 관련된 내용을 찾지 못했습니다. 질문을 바꾸거나 "
              "다른 지식베이스를 선택해 주세요.")
NOT_FOUND = "제공된 자료에서 답을 찾을 수 없습니다."
# Short, Korean, one worked example, and first in the prompt: the engine keeps this fixed prefix
# cached between answers. Citation markers are placed by the platform (grounded_answer), not asked of
# the model: a 0.5B model wrote them in one answer in ten.
INSTRUCTIONS = (
    "당신은 공무원의 업무를 돕는 AI입니다. 아래 [자료]에 있는 내용만 근거로 질문에 한국어로 한두 문장으로 "
    f"답하세요. 자료의 낱말과 숫자를 바꾸지 말고 그대로 쓰세요. 자료에 답이 없으면 '{NOT_FOUND}'라고만 답하세요.\n"
    "예시) 자료: 민원은 접수한 날부터 7일 안에 처리하고 결과를 문자로 알린다. 질문: 민원 처리 기한은? "
    "답: 민원은 접수한 날부터 7일 안에 처리합니다."
)


@dataclass(frozen=True)
class Passage:
    index: int
    result: SearchResult

    def citation(self) -> dict[str, Any]:
        r = self.result
        return {"index": self.index, "source": r.source, "title": r.title, "section": r.section,
                "page": r.page, "ocr": r.ocr, "snippet": r.text[:300], "text": r.text, "grade": r.grade,
                "collection": r.collection, "document_id": r.document_id, "chunk_id": r.chunk_id,
                "version": r.version, "superseded": r.superseded}


def gather_passages(store: IndexStore, collections: list[Collection], question: str,
                    budget_chars: int, top_k: int = TOP_K, as_of: date | None = None,
                    embedder: Embedder | None = None, grade: Grade = Grade.OPEN) -> list[Passage]:
    """Whole documents if they fit the model's reading budget, else the best passages fitted to it."""
    results = [] if as_of else whole_collections(store, collections, budget_chars)
    if not results:
        results = search(store, collections, question, top_k, as_of, embedder=embedder, grade=grade)
        results = excerpts.fit(results, question, budget_chars)
    return [Passage(i, r) for i, r in enumerate(results, 1)]


def grounded_messages(messages: list[dict[str, Any]], passages: list[Passage],
                      key_sentence: tuple[int, str] | None = None) -> list[dict[str, Any]]:
    # Short headers: every character is read on every call (excerpts.HEADER_CHARS budgets them).
    sources = "\n\n".join(
        f"[{p.index}] {p.result.title[:30]}" + (f" · {p.result.section[:15]}" if p.result.section else "")
        + ("(이전 버전)" if p.result.superseded else "") + f"\n{p.result.text}"
        for p in passages)
    # One system message: a leading one of the caller's (or an agent's instructions) joins ours,
    # since some models' chat templates accept a single system message only.
    own = ""
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        own, messages = messages[0]["content"].strip() + "\n\n", messages[1:]
    # The sentence that best answers, again last: a small model reads what is near the question best.
    key = f"\n\n[핵심 문장] [{key_sentence[0]}] {key_sentence[1]}" if key_sentence else ""
    return [{"role": "system", "content": f"{INSTRUCTIONS}\n\n{own}[자료]\n{sources}{key}"}, *messages]


def passage_items(passages: list[Passage]) -> list[GradedItem]:
    return [GradedItem("passage", f"doc:{p.result.document_id}", Grade.parse(p.result.grade))
            for p in passages]


def no_sources_completion(model: str, request_id: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": NO_SOURCES}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, "citations": []}


def no_sources_chunk(model: str, request_id: str) -> dict[str, Any]:
    """The same answer as one streamed chunk."""
    return {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "delta": {"role": "assistant", "content": NO_SOURCES}}]}
