"""Conversations at rest: a message graded S or C (and its meta: citations quote sources) is
sealed under its owner's agency and bound to its conversation and row; a conversation's title
is sealed when it came from such a message. See store/keyring.py."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.store.key_providers import KeyShredded
from hanchang.store.keyring import IntegrityFailure, is_sealed, keyring_of, must_seal
from hanchang.store.tables import Conversation, Message, User

UNREADABLE = "(열 수 없는 메시지입니다: 무결성 검사 실패 또는 키 파기 · this message cannot be opened)"


def agency_of_conversation(session: Session, conversation_id: int) -> int:
    cache = session.info.setdefault("conversation_agency", {})
    if conversation_id not in cache:
        cache[conversation_id] = session.scalar(
            select(User.agency_id).join(Conversation, Conversation.user_id == User.id)
            .where(Conversation.id == conversation_id))
    return cache[conversation_id]


def message_where(column: str, message: Message) -> str:
    """What a message's sealed column is bound to (also what the sweep re-seals it with)."""
    return f"messages.{column}:{message.conversation_id}:{message.id}"


def seal_message(session: Session, message: Message, always: bool = False) -> None:
    """Seal the (flushed) message's content and meta in place, if its grade asks for it (or
    `always`: a question about sealed sources)."""
    if not (always or must_seal(session, message.grade)):
        return
    keyring = keyring_of(session)
    agency_id = agency_of_conversation(session, message.conversation_id)
    for column in ("content", "meta"):
        value = getattr(message, column)
        if not is_sealed(value):
            setattr(message, column, keyring.seal(agency_id, message_where(column, message), value, session))


def content(session: Session, message: Message) -> str:
    if not is_sealed(message.content):
        return message.content
    try:
        return keyring_of(session).open(agency_of_conversation(session, message.conversation_id),
                                        message_where("content", message), message.content, session)
    except (IntegrityFailure, KeyShredded):
        return UNREADABLE


def meta(session: Session, message: Message) -> dict[str, Any]:
    value = message.meta or "{}"
    if is_sealed(value):
        try:
            value = keyring_of(session).open(agency_of_conversation(session, message.conversation_id),
                                             message_where("meta", message), value, session)
        except (IntegrityFailure, KeyShredded):
            return {"integrity_failure": True}
    try:
        return json.loads(value)
    except ValueError:
        return {}


def title_where(conversation: Conversation) -> str:
    """What a conversation's sealed title is bound to."""
    return f"conversations.title:{conversation.id}"


def seal_title(session: Session, conversation: Conversation, title: str) -> str:
    keyring = keyring_of(session)
    return keyring.seal(agency_of_conversation(session, conversation.id), title_where(conversation), title, session)


def title(session: Session, conversation: Conversation) -> str:
    if not is_sealed(conversation.title):
        return conversation.title
    try:
        return keyring_of(session).open(agency_of_conversation(session, conversation.id),
                                        title_where(conversation), conversation.title, session)
    except (IntegrityFailure, KeyShredded):
        return "(열 수 없는 제목 · unreadable)"
