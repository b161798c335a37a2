"""Conversations of the window, always scoped to their owner in the query."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.store import sealed_messages
from hanchang.store.keyring import TEXT_PREFIX as SEALED
from hanchang.store.keyring import must_seal
from hanchang.store.tables import Collection, Conversation, Feedback, Message, utcnow

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
    needle = query.strip()
    if needle:
        # Clear titles and messages are searched by the database; sealed ones (S/C) are opened
        # and searched here, the user's own only.
        like = f"%{needle}%"
        found = set(session.scalars(stmt.with_only_columns(Conversation.id).where(or_(
            Conversation.title.ilike(like), Conversation.id.in_(
                select(Message.conversation_id).where(Message.content.ilike(like)))))))
        for conversation in session.scalars(stmt.where(Conversation.title.like(f"{SEALED}%"))):
            if needle.lower() in sealed_messages.title(session, conversation).lower():
                found.add(conversation.id)
        for message in session.scalars(select(Message).join(Conversation).where(
                Conversation.user_id == user_id, Message.content.like(f"{SEALED}%"))):
            if needle.lower() in sealed_messages.content(session, message).lower():
                found.add(message.conversation_id)
        stmt = stmt.where(Conversation.id.in_(found))
    return [{"id": c.id, "title": sealed_messages.title(session, c), "updated_at": c.updated_at.isoformat()}
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
    return [{"id": m.id, "role": m.role, "content": sealed_messages.content(session, m), "grade": m.grade,
             "model": m.model, "meta": sealed_messages.meta(session, m), "rating": ratings.get(m.id),
             "created_at": m.created_at.isoformat()}
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
    return [{"role": m.role, "content": sealed_messages.content(session, m)} for m in rows], items


def about_sealed(session: Session, collection_ids: list[int]) -> bool:
    """Whether any of these collections holds data sealed at rest (S/C)."""
    if not collection_ids:
        return False
    grades = session.scalars(select(Collection.grade).where(Collection.id.in_(collection_ids)))
    return any(must_seal(session, g) for g in grades)


def add(session: Session, conversation: Conversation, role: str, content: str, grade: str,
        model: str | None = None, meta: dict | None = None, agent_id: int | None = None,
        sealed: bool = False) -> Message:
    message = Message(conversation_id=conversation.id, role=role, content=content, grade=grade, model=model,
                      meta=json.dumps(meta or {}, ensure_ascii=False), agent_id=agent_id)
    session.add(message)
    conversation.updated_at = utcnow()
    if role == "user" and conversation.title == "새 대화":
        title = content.strip().splitlines()[0][:TITLE_CHARS] or "새 대화"
        sealed = sealed or must_seal(session, grade)
        conversation.title = sealed_messages.seal_title(session, conversation, title) if sealed else title
    session.flush()
    sealed_messages.seal_message(session, message, sealed)  # bound to its row: sealed once it has an id
    return message


def rename(session: Session, conversation: Conversation, title: str) -> None:
    """A title the user gives a conversation that holds S/C messages is sealed like them."""
    grades = set(session.scalars(select(Message.grade).where(Message.conversation_id == conversation.id)))
    sealed = any(must_seal(session, g) for g in grades) or conversation.title.startswith(SEALED)
    conversation.title = sealed_messages.seal_title(session, conversation, title) if sealed else title


def drop_last_answer(session: Session, conversation: Conversation) -> str | None:
    """For regenerate: remove the last assistant/notice message; return the last question."""
    last = session.scalar(select(Message).where(Message.conversation_id == conversation.id)
                          .order_by(Message.id.desc()).limit(1))
    if last is not None and last.role in ("assistant", "notice"):
        session.delete(last)
        session.flush()
    question = session.scalar(select(Message).where(Message.conversation_id == conversation.id,
                                                    Message.role == "user").order_by(Message.id.desc()).limit(1))
    return sealed_messages.content(session, question) if question else None


def rate(session: Session, user_id: int, agency_code: str, message_id: int, rating: int, reason: str) -> None:
    message = session.scalar(select(Message).join(Conversation).where(
        Message.id == message_id, Conversation.user_id == user_id, Message.role == "assistant"))
    if message is None:
        raise NotFound("답변을 찾을 수 없습니다.", f"message {message_id} not found")
    session.execute(delete(Feedback).where(Feedback.message_id == message_id, Feedback.user_id == user_id))
    session.add(Feedback(message_id=message_id, user_id=user_id, agency_code=agency_code,
                         rating=1 if rating > 0 else -1, reason=reason[:1000]))
