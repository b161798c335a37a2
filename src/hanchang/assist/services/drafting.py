"""draft 문서 작성: drafts from templates in Korean government style, exportable to DOCX.

A template is sections + instructions + an optional example. Output follows civil-service
conventions: 개조식 bullets where expected and dates written like 2025. 8. 7.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult


@dataclass(frozen=True)
class Template:
    id: str
    name_ko: str
    sections: tuple[str, ...]
    instructions: str
    example: str = ""


TEMPLATES = {t.id: t for t in (
    Template("press_release", "보도자료", ("제목", "부제", "본문", "담당 부서 및 연락처"),
             "첫 문단에 누가·언제·무엇을·왜를 담고, 인용문은 기관장 명의로 한 번만 쓰세요."),
    Template("minutes", "회의록", ("회의 개요(일시·장소·참석자)", "안건", "논의 내용", "결정 사항", "향후 조치"),
             "논의 내용과 결정 사항은 개조식으로 쓰세요."),
    Template("report", "업무계획/보고서", ("개요", "추진배경", "추진내용", "기대효과"),
             "각 절은 □ 제목 아래 ○ 개조식 문장으로 쓰고, 문장은 '~함', '~임'으로 끝내세요.",
             "□ 개요\n ○ (목적) 공공부문 초거대 AI 활용 기반 마련\n ○ (기간) 2025. 8. 7. ~ 2025. 12. 31."),
    Template("official_letter", "공문", ("수신", "제목", "본문", "붙임", "발신 명의"),
             "본문은 '1. 관련: …', '2. …' 번호 체계를 쓰고 끝에 '끝.'을 붙이세요."),
    Template("email", "이메일", ("제목", "인사", "본문", "맺음말"), "정중하고 간결하게 쓰세요."),
)}


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
    template = TEMPLATES[inputs["template"]]
    sections = "\n".join(f"- {s}" for s in template.sections)
    system = (f"당신은 대한민국 공무원의 {template.name_ko} 작성을 돕습니다. 아래 절을 차례대로 모두 쓰세요.\n"
              f"{sections}\n{template.instructions}\n날짜는 '{korean_date(date.today())}' 형식으로 쓰세요."
              + (f"\n예시:\n{template.example}" if template.example else ""))
    draft = await ctx.complete("draft", [{"role": "system", "content": system},
                                         {"role": "user", "content": inputs["request"]}], max_tokens=1500)
    return ServiceResult(normalise_dates(draft), meta={"template": template.id, "title": template.name_ko,
                                                       "sections": list(template.sections)})


DRAFT = Service("draft", "문서 작성", "Drafting",
                "보도자료·회의록·업무계획/보고서·공문·이메일 초안을 서식에 맞춰 작성합니다.",
                (Field("template", "choice", "문서 종류", choices=tuple(TEMPLATES)),
                 Field("request", "longtext", "작성 요청 내용")), run)
