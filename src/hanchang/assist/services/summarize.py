"""summarize 요약: long documents and meeting transcripts, map-reduce past the context window.

Minutes (회의록) are summarised by speaker, with decisions and action items.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceInputError, ServiceResult
from hanchang.assist.services.uploads import document_text
from hanchang.knowledge.chunking import _split_long

CHARS_PER_TOKEN = 1.5
MAX_REDUCE_ROUNDS = 2
STYLES = ("general", "minutes")
MAP_PROMPT = "다음 글의 핵심 내용을 개조식(- 로 시작하는 짧은 문장)으로 빠짐없이 요약하세요."
REDUCE_PROMPT = "다음은 긴 문서를 나누어 요약한 내용입니다. 중복을 없애고 하나의 개조식 요약으로 정리하세요."
MINUTES_PROMPT = (
    "다음 회의 기록을 회의록으로 정리하세요. 형식:\n"
    "1. 발언 요지(발언자별)\n2. 결정 사항\n3. 조치 사항(담당·기한)\n"
    "기록에 없는 내용은 만들지 마세요."
)


def pieces_for(text: str, context_window: int) -> list[str]:
    """Split text so each piece fits about half the model's context window."""
    budget = max(500, int(context_window * 0.5 * CHARS_PER_TOKEN))
    return _split_long(text, budget)


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    text, style, source = (inputs.get("text") or "").strip(), inputs.get("style") or "general", None
    if inputs.get("file"):
        text, name = await run_in_threadpool(document_text, inputs["file"])
        source = {"kind": "document", "filename": name}
    if not text:
        raise ServiceInputError("요약할 글을 넣거나 문서 파일(HWP·HWPX·PDF·DOCX 등)을 올려 주세요.")
    final_prompt = MINUTES_PROMPT if style == "minutes" else MAP_PROMPT
    pieces = pieces_for(text, ctx.context_window())
    if len(pieces) == 1:
        summary = await ctx.complete("summarize", [{"role": "system", "content": final_prompt},
                                                   {"role": "user", "content": text}])
        return ServiceResult(summary, meta={"pieces": 1, "style": style, "source": source})
    partial = [await ctx.complete("summarize", [{"role": "system", "content": MAP_PROMPT},
                                                {"role": "user", "content": piece}]) for piece in pieces]
    joined = "\n".join(partial)
    rounds, truncated = 0, False
    while len(groups := pieces_for(joined, ctx.context_window())) > 1:  # reduce again until it fits
        if rounds == MAX_REDUCE_ROUNDS:  # summaries that do not shrink: keep what fits, and say so
            joined, truncated = groups[0], True
            break
        shorter = "\n".join([await ctx.complete("summarize", [{"role": "system", "content": REDUCE_PROMPT},
                                                              {"role": "user", "content": g}]) for g in groups])
        rounds += 1
        joined = shorter
    reduce_prompt = MINUTES_PROMPT if style == "minutes" else REDUCE_PROMPT
    summary = await ctx.complete("summarize", [{"role": "system", "content": reduce_prompt},
                                               {"role": "user", "content": joined}])
    return ServiceResult(summary, meta={"pieces": len(pieces), "style": style, "reduce_rounds": rounds,
                                        "truncated": truncated, "source": source})


SUMMARIZE = Service("summarize", "요약", "Summarize",
                    "긴 문서나 회의 기록을 요약합니다. 회의록은 발언자·결정 사항·조치 사항으로 정리합니다.",
                    (Field("text", "longtext", "요약할 글", required=False),
                     Field("file", "file", "또는 문서 파일(HWP·HWPX·PDF·DOCX 등)", required=False),
                     Field("style", "choice", "형식", required=False, choices=STYLES,
                           choice_labels=("일반 요약", "회의록"))), run)
