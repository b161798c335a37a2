"""draft 문서 작성: drafts from templates in Korean government style, exportable to DOCX/HWPX.

Templates (`assist.templates`) are the built-in forms plus the ones each agency manages. Output
follows civil-service conventions: 개조식 bullets where expected and dates written like 2025. 8. 7.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool

from hanchang.assist import templates
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceInputError, ServiceResult
from hanchang.core.errors import NotFound


def korean_date(day: date) -> str:
    """Government date style: 2025. 8. 7."""
    return f"{day.year}. {day.month}. {day.day}."


def normalise_dates(text: str) -> str:
    """2025-08-07 / 2025.08.07 / 2025년 8월 7일 → 2025. 8. 7."""
    patterns = (r"(\d{4})-(\d{1,2})-(\d{1,2})", r"(\d{4})\.(\d{1,2})\.(\d{1,2})\.?(?!\d)",
                r"(\d{4})년\s*(\d{1,2})월\s*(\d{1,2})일")
    for pattern in patterns:
        text = re.sub(pattern, lambda m: f"{int(m[1])}. {int(m[2])}. {int(m[3])}.", text)
    return text


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    def load() -> templates.Template:
        with ctx.platform.db.session() as session:
            return templates.find(session, ctx.principal, inputs["template"])
    try:
        template = await run_in_threadpool(load)
    except NotFound as exc:
        raise ServiceInputError(exc.message_ko) from None
    sections = "\n".join(f"- {s}" for s in template.sections)
    system = (f"당신은 대한민국 공무원의 {template.name_ko} 작성을 돕습니다. 아래 절을 차례대로 모두 쓰세요.\n"
              f"{sections}\n{template.instructions}\n날짜는 '{korean_date(date.today())}' 형식으로 쓰세요."
              + (f"\n예시:\n{template.example}" if template.example else ""))
    draft = await ctx.complete("draft", [{"role": "system", "content": system},
                                         {"role": "user", "content": inputs["request"]}], max_tokens=1500)
    return ServiceResult(normalise_dates(draft), meta={"template": template.id, "title": template.name_ko,
                                                       "sections": list(template.sections),
                                                       "template_source": template.source})


DRAFT = Service("draft", "문서 작성", "Drafting",
                "보도자료·회의록·업무계획/보고서·공문·이메일 초안을 서식에 맞춰 작성합니다.",
                (Field("template", "choice", "문서 종류", choices_from="/api/services/draft/templates"),
                 Field("request", "longtext", "작성 요청 내용")), run)
