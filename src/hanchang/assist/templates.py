"""Drafting templates: the built-in government forms, and the ones each agency manages.

A template is sections + instructions + an optional example. Every agency sees the built-in
templates; its admins add their own, and an agency template with a built-in's key replaces it
for that agency only. Reads and writes are scoped to the caller's agency in the query.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import HanchangError, NotFound
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.tables import DraftTemplate, utcnow

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_SECTIONS = 30


class TemplateError(HanchangError):
    status, code = 400, "invalid_template"


@dataclass(frozen=True)
class Template:
    id: str
    name_ko: str
    sections: tuple[str, ...]
    instructions: str
    example: str = ""
    source: str = "builtin"  # builtin | agency

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "sections": list(self.sections)}


BUILTIN: dict[str, Template] = {t.id: t for t in (
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


def _from_row(row: DraftTemplate) -> Template:
    return Template(row.key, row.name_ko, tuple(json.loads(row.sections)), row.instructions, row.example, "agency")


def available(session: Session, principal: Principal) -> dict[str, Template]:
    return for_agency(session, principal.agency_id)


def find(session: Session, principal: Principal, key: str) -> Template:
    templates = available(session, principal)
    if key not in templates:
        raise NotFound(f"서식 '{key}'이(가) 없습니다. 있는 서식: {', '.join(templates)}",
                                 f"no template '{key}'")
    return templates[key]


def _require_admin(principal: Principal) -> None:
    require(principal, "templates.manage")


def validate(key: str, name_ko: str, sections: list[str], instructions: str) -> list[str]:
    if not KEY_PATTERN.match(key):
        raise TemplateError("서식 키는 영문 소문자·숫자·-·_ 로 64자 이내여야 합니다 (예: weekly_report).",
                            "template key must match [a-z0-9][a-z0-9_-]{0,63}")
    if not name_ko.strip():
        raise TemplateError("서식 이름(name_ko)을 넣어 주세요.", "name_ko is required")
    clean = [s.strip() for s in sections if isinstance(s, str) and s.strip()]
    if not clean or len(clean) > MAX_SECTIONS:
        raise TemplateError(f"절(sections)은 1개 이상 {MAX_SECTIONS}개 이하로 넣어 주세요.",
                            f"sections must hold 1 to {MAX_SECTIONS} titles")
    if not instructions.strip():
        raise TemplateError("작성 지침(instructions)을 넣어 주세요.", "instructions are required")
    return clean


def save(session: Session, principal: Principal, key: str, name_ko: str, sections: list[str],
         instructions: str, example: str = "") -> Template:
    """Create or replace one of the caller's agency's templates (admins only, audited)."""
    _require_admin(principal)
    template, created = store(session, principal.agency_id, key, name_ko, sections, instructions, example,
                              principal.user_id)
    trail.record_by(session, principal, "templates.save",
                    {"template": key, "created": created, "replaces_builtin": key in BUILTIN})
    return template


def store(session: Session, agency_id: int, key: str, name_ko: str, sections: list[str], instructions: str,
          example: str = "", updated_by: int | None = None) -> tuple[Template, bool]:
    """Write an agency template (no permission check: `save` and the CLI decide who may)."""
    clean = validate(key, name_ko, sections, instructions)

    def fill(row: DraftTemplate) -> DraftTemplate:
        row.name_ko, row.sections = name_ko.strip(), json.dumps(clean, ensure_ascii=False)
        row.instructions, row.example = instructions.strip(), (example or "").strip()
        row.updated_by, row.updated_at = updated_by, utcnow()
        return row

    row = session.scalar(select(DraftTemplate).where(DraftTemplate.agency_id == agency_id,
                                                     DraftTemplate.key == key).with_for_update())
    created = row is None
    if created:
        try:
            with session.begin_nested():  # another request may be creating the same key right now
                row = fill(DraftTemplate(agency_id=agency_id, key=key))
                session.add(row)
        except IntegrityError:  # it did: update theirs
            created = False
            row = session.scalar(select(DraftTemplate).where(DraftTemplate.agency_id == agency_id,
                                                             DraftTemplate.key == key).with_for_update())
    if not created:
        fill(row)
    session.flush()
    return _from_row(row), created


def delete(session: Session, principal: Principal, key: str) -> None:
    _require_admin(principal)
    remove(session, principal.agency_id, key)
    trail.record_by(session, principal, "templates.delete", {"template": key})


def remove(session: Session, agency_id: int, key: str) -> None:
    row = session.scalar(select(DraftTemplate).where(DraftTemplate.agency_id == agency_id,
                                                     DraftTemplate.key == key))
    if row is None:
        hint = " 기본 서식은 지울 수 없고, 같은 키로 기관 서식을 저장하면 바뀝니다." if key in BUILTIN else ""
        raise NotFound(f"기관 서식 '{key}'이(가) 없습니다.{hint}", f"no agency template '{key}'")
    session.delete(row)


def for_agency(session: Session, agency_id: int) -> dict[str, Template]:
    """The built-in templates overlaid with an agency's own."""
    rows = session.scalars(select(DraftTemplate).where(DraftTemplate.agency_id == agency_id)
                           .order_by(DraftTemplate.key))
    return {**BUILTIN, **{row.key: _from_row(row) for row in rows}}
