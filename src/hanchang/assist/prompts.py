"""Prompt snippets (프롬프트 조각) an agency keeps, to paste into the window or share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import AlreadyExists, InvalidInput, NotFound
from hanchang.core.ids import in_range
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.tables import PromptSnippet


def describe(row: PromptSnippet) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "text": row.text, "created_by": row.created_by,
            "forked_from": row.forked_from}


def for_agency(session: Session, principal: Principal) -> list[PromptSnippet]:
    return list(session.scalars(select(PromptSnippet).where(PromptSnippet.agency_id == principal.agency_id)
                                .order_by(PromptSnippet.title)))


def own(session: Session, principal: Principal, snippet_id: int) -> PromptSnippet:
    row = session.get(PromptSnippet, snippet_id) if in_range(snippet_id) else None
    if row is None or row.agency_id != principal.agency_id:
        raise NotFound(f"프롬프트 {snippet_id}을(를) 찾을 수 없습니다.", f"no prompt {snippet_id}")
    return row


def create(session: Session, principal: Principal, title: str, text: str, forked_from: int | None = None,
           audit: bool = True) -> PromptSnippet:
    require(principal, "agents.create")
    title, text = title.strip(), text.strip()
    if not title or len(title) > 100 or not text or len(text) > 8000:
        raise InvalidInput("프롬프트는 제목(100자 이내)과 내용(8000자 이내)이 있어야 합니다.",
                           "a prompt needs a title (≤100) and a text (≤8000)")
    row = PromptSnippet(agency_id=principal.agency_id, title=title, text=text, created_by=principal.user_id,
                        forked_from=forked_from)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise AlreadyExists(f"이 기관에 '{title}' 프롬프트가 이미 있습니다.", f"prompt '{title}' exists") from None
    if audit:
        trail.record_by(session, principal, "prompts.create", {"prompt": row.id, "title": title})
    return row


def delete(session: Session, principal: Principal, snippet_id: int) -> None:
    row = own(session, principal, snippet_id)
    require(principal, "agents.change", row)
    session.delete(row)
    trail.record_by(session, principal, "prompts.delete", {"prompt": snippet_id, "title": row.title})
