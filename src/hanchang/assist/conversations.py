"""Conversations of the window, always scoped to their owner in the query."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.store.tables import Conversation, Feedback, Message, utcnow

TITLE_CHARS = 40
HISTORY_MESSAGES = 12  # earlier turns sent with a new question


def owned(session: Session, user_id: int, conversation_id: int) -> Conversation:
    found = session.scalar(select(Conversation).where(Conversation.id == conversation_id,
                                                      Conversation.user_id == user_id))
    if found is None:
        raise NotFound("대화를 찾을 수 없습니다.", f"conversation {conversation_id} not found")
    return found


def listing(session: Session, user_id: int, query: str = "") -> list[dict[str, Any]]:
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    if query.strip():
        like = f"%{query.strip()}%"
        stmt = stmt.where(or_(Conversation.title.ilike(like), Conversation.id.in_(
            select(Message.conversation_id).where(Message.content.ilike(like)))))
    return [{"id": c.id, "title": c.title, "updated_at": c.updated_at.isoformat()}
            for c in session.scalars(stmt.order_by(Conversation.updated_at.desc()).limit(200))]


def create(session: Session, user_id: int, title: str = "새 대화") -> Conversation:
    conversation = Conversation(user_id=user_id, title=title[:200] or "새 대화")
    session.add(conversation)
    session.flush()
    return conversation


def messages(session: Session, conversation: Conversation, user_id: int) -> list[dict[str, Any]]:
    ratings = dict(session.execute(select(Feedback.message_id, Feedback.rating).where(
        Feedback.user_id == user_id,
        Feedback.message_id.in_(select(Message.id).where(Message.conversation_id == conversation.id)))).all())
    return [{"id": m.id, "role": m.role, "content": m.content, "grade": m.grade, "model": m.model,
             "meta": json.loads(m.meta), "rating": ratings.get(m.id), "created_at": m.created_at.isoformat()}
            for m in session.scalars(select(Message).where(Message.conversation_id == conversation.id)
                                     .order_by(Message.id))]


def history(session: Session, conversation: Conversation) -> tuple[list[dict[str, str]], list[GradedItem]]:
    """Earlier user/assistant turns, oldest first, for the model — and the grade each carries.

    A conversation's history goes to the model with every new question, so its grades join the
    request's grade: an answer drawn from 민감 sources keeps the conversation 민감 for any model.
    """
    rows = list(reversed(list(session.scalars(
        select(Message).where(Message.conversation_id == conversation.id, Message.role.in_(("user", "assistant")))
        .order_by(Message.id.desc()).limit(HISTORY_MESSAGES)))))
    items = [GradedItem("history", f"message:{m.id}", Grade.parse(m.grade)) for m in rows]
    return [{"role": m.role, "content": m.content} for m in rows], items


def add(session: Session, conversation: Conversation, role: str, content: str, grade: str,
        model: str | None = None, meta: dict | None = None, agent_id: int | None = None) -> Message:
    message = Message(conversation_id=conversation.id, role=role, content=content, grade=grade, model=model,
                      meta=json.dumps(meta or {}, ensure_ascii=False), agent_id=agent_id)
    session.add(message)
    conversation.updated_at = utcnow()
    if role == "user" and conversation.title == "새 대화":
        conversation.title = content.strip().splitlines()[0][:TITLE_CHARS] or "새 대화"
    session.flush()
    return message


def drop_last_answer(session: Session, conversation: Conversation) -> str | None:
    """For regenerate: remove the last assistant/notice message; return the last question."""
    last = session.scalar(select(Message).where(Message.conversation_id == conversation.id)
                          .order_by(Message.id.desc()).limit(1))
    if last is not None and last.role in ("assistant", "notice"):
        session.delete(last)
        session.flush()
    question = session.scalar(select(Message).where(Message.conversation_id == conversation.id,
                                                    Message.role == "user").order_by(Message.id.desc()).limit(1))
    return question.content if question else None


def rate(session: Session, user_id: int, agency_code: str, message_id: int, rating: int, reason: str) -> None:
    message = session.scalar(select(Message).join(Conversation).where(
        Message.id == message_id, Conversation.user_id == user_id, Message.role == "assistant"))
    if message is None:
        raise NotFound("답변을 찾을 수 없습니다.", f"message {message_id} not found")
    session.execute(delete(Feedback).where(Feedback.message_id == message_id, Feedback.user_id == user_id))
    session.add(Feedback(message_id=message_id, user_id=user_id, agency_code=agency_code,
                         rating=1 if rating > 0 else -1, reason=reason[:1000]))
