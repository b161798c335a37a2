"""translate 번역: Korean⇄English (and other languages the model supports) with fixed terms.

Each agency's glossary (config `services.glossary`, plus the common `"*"` one) pins how its
terms are translated; the result reports any pinned term the model did not use.
"""

from __future__ import annotations

from typing import Any

from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult

LANGUAGES = {"ko": "한국어", "en": "영어(English)", "ja": "일본어", "zh": "중국어", "vi": "베트남어"}


def glossary_for(ctx: ServiceContext, text: str, source: str) -> dict[str, str]:
    config = ctx.platform.settings.services.glossary
    terms = {**config.get("*", {}), **config.get(ctx.principal.agency_code, {})}
    if source != "ko":  # glossaries are written Korean → English; use them backwards from English
        terms = {english: korean for korean, english in terms.items()}
    return {term: target for term, target in terms.items() if term in text}


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    text = inputs["text"].strip()
    source, target = inputs.get("source") or "ko", inputs.get("target") or "en"
    if source == target:
        from hanchang.assist.services.base import ServiceInputError

        raise ServiceInputError("원문 언어와 번역 언어가 같습니다. 서로 다른 언어를 고르세요.")
    pinned = glossary_for(ctx, text, source)
    rules = "".join(f"\n- {term} → {translation}" for term, translation in pinned.items())
    system = (f"다음 글을 {LANGUAGES[source]}에서 {LANGUAGES[target]}로 정확하고 자연스럽게 번역하세요. "
              "공문서 문체를 유지하고, 번역문만 출력하세요."
              + (f"\n다음 용어는 반드시 이렇게 번역하세요:{rules}" if rules else ""))
    translation = await ctx.complete("translate", [{"role": "system", "content": system},
                                                   {"role": "user", "content": text}])
    missing = [term for term, wanted in pinned.items() if wanted not in translation]
    return ServiceResult(translation, meta={"source": source, "target": target, "glossary_applied": pinned,
                                            "glossary_missing": missing})


TRANSLATE = Service("translate", "번역", "Translate",
                    "기관 용어집을 지켜 한국어⇄영어 등으로 번역합니다.",
                    (Field("text", "longtext", "원문"),
                     Field("source", "choice", "원문 언어", required=False, choices=tuple(LANGUAGES),
                           choice_labels=tuple(LANGUAGES.values())),
                     Field("target", "choice", "번역 언어", required=False, choices=tuple(LANGUAGES),
                           choice_labels=tuple(LANGUAGES.values()))), run)
