"""Feedback review: administrators read the 👎 answers of their agency with the question, the
sources and the reason, mark each (resolved / knowledge gap / model error), may write the answer
that was expected, and export them as a JSONL evaluation set — personal data masked, grades kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.audit.trail import record_by
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.guard.pii import scan
from hanchang.guard.vault import PseudonymVault
from hanchang.store import sealed_messages
from hanchang.store.tables import Agency, Feedback, Message, utcnow

STATUSES = ("open", "resolved", "knowledge_gap", "model_error")
STATUS_KO = {"open": "검토 전", "resolved": "해결됨", "knowledge_gap": "지식 부족", "model_error": "모델 오류"}
EXPORT_LIMIT = 10_000


class _Owned:
    """A feedback row as a permission resource: the agency it belongs to."""

    def __init__(self, agency_id: int | None):
        self.agency_id = agency_id


def _scoped(query, principal: Principal, agency: str | None):
    if not can(principal, SEE_EVERY_AGENCY):
        return query.where(Feedback.agency_code == principal.agency_code)
    return query.where(Feedback.agency_code == agency) if agency else query


def _rows(session: Session, principal: Principal, *, status: str | None, rating: int | None,
          agency: str | None, limit: int, since: datetime | None = None):
    require(principal, "feedback.review")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"상태는 {', '.join(STATUSES)} 중 하나입니다.", f"status must be one of {STATUSES}",
                           param="status")
    query = select(Feedback, Message).join(Message, Message.id == Feedback.message_id)
    query = _scoped(query, principal, agency)
    if status:
        query = query.where(Feedback.review_status == status)
    if rating is not None:
        query = query.where(Feedback.rating == (1 if rating > 0 else -1))
    if since is not None:
        query = query.where(Feedback.created_at >= since)
    return session.execute(query.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)).all()


def _question(session: Session, answer: Message) -> str:
    question = session.scalar(select(Message).where(
        Message.conversation_id == answer.conversation_id, Message.id < answer.id, Message.role == "user")
        .order_by(Message.id.desc()).limit(1))
    return sealed_messages.content(session, question) if question else ""


def _sources(session: Session, answer: Message) -> list[dict[str, Any]]:
    meta = sealed_messages.meta(session, answer)
    keep = ("index", "source", "title", "section", "page", "grade", "collection", "document_id", "chunk_id",
            "version", "snippet")
    return [{k: c.get(k) for k in keep if c.get(k) is not None} for c in meta.get("citations") or []
            if isinstance(c, dict)]


def _item(session: Session, feedback: Feedback, answer: Message) -> dict[str, Any]:
    return {"id": feedback.id, "message_id": answer.id, "agency": feedback.agency_code, "rating": feedback.rating,
            "reason": feedback.reason, "question": _question(session, answer),
            "answer": sealed_messages.content(session, answer), "sources": _sources(session, answer),
            "grade": answer.grade, "model": answer.model,
            "status": feedback.review_status, "status_ko": STATUS_KO[feedback.review_status],
            "expected_answer": feedback.expected_answer, "created_at": feedback.created_at.isoformat(),
            "reviewed_at": feedback.reviewed_at.isoformat() if feedback.reviewed_at else None}


def listing(session: Session, principal: Principal, *, status: str | None = None, rating: int | None = -1,
            agency: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    return [_item(session, f, m) for f, m in _rows(session, principal, status=status, rating=rating,
                                                   agency=agency, limit=min(limit, 500))]


def review(session: Session, principal: Principal, feedback_id: int, status: str,
           expected_answer: str | None = None) -> dict[str, Any]:
    if status not in STATUSES:
        raise InvalidInput(f"상태는 {', '.join(STATUSES)} 중 하나입니다.", f"status must be one of {STATUSES}",
                           param="status")
    feedback = session.get(Feedback, feedback_id)
    agency_id = session.scalar(select(Agency.id).where(Agency.code == feedback.agency_code)) if feedback else None
    visible = feedback is not None and (can(principal, SEE_EVERY_AGENCY)
                                        or feedback.agency_code == principal.agency_code)
    if not visible:  # another agency's feedback does not exist for this caller
        raise NotFound("평가를 찾을 수 없습니다.", f"feedback {feedback_id} not found")
    require(principal, "feedback.review", _Owned(agency_id))
    feedback.review_status = status
    if expected_answer is not None:
        feedback.expected_answer = expected_answer[:20_000]
    feedback.reviewed_by, feedback.reviewed_at = principal.user_id, utcnow()
    record_by(session, principal, "feedback.review", {"feedback_id": feedback_id, "status": status,
                                                      "expected_answer_given": bool(feedback.expected_answer)})
    answer = session.get(Message, feedback.message_id)
    return _item(session, feedback, answer)


def evaluation_lines(session: Session, principal: Principal, *, status: str | None = None,
                     rating: int | None = -1, agency: str | None = None,
                     since: datetime | None = None) -> Iterator[bytes]:
    """One JSON line per rated answer: question, answer, expected answer, sources, grade — with
    personal data replaced by typed placeholders (the same value, the same placeholder, per line)."""
    for feedback, answer in _rows(session, principal, status=status, rating=rating, agency=agency,
                                  limit=EXPORT_LIMIT, since=since):
        item = _item(session, feedback, answer)
        vault = PseudonymVault()
        for field in ("question", "answer", "expected_answer", "reason"):
            text = item[field] or ""
            item[field] = vault.replace(text, scan(text)) if text else text
        yield orjson.dumps({
            "id": f"feedback-{feedback.id}", "question": item["question"],
            "expected_answer": item["expected_answer"] or None, "answer": item["answer"],
            "sources": item["sources"], "grade": item["grade"], "model": item["model"],
            "rating": item["rating"], "reason": item["reason"], "review_status": item["status"],
            "agency": item["agency"], "created_at": item["created_at"]}) + b"\n"

