"""Stored responses of the Responses API: kept per user, found only by that user.

A later call continues one (`previous_response_id`) with the conversation it holds and the
grade it reached, so nothing graded S or C in an earlier turn can reach a model that may not
see it through a continuation (the grade is carried like the window's history).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal
from hanchang.store.keyring import open_json, seal_json
from hanchang.store.tables import StoredResponse


def _owned(session: Session, principal: Principal, response_id: str) -> StoredResponse:
    found = session.scalar(select(StoredResponse).where(
        StoredResponse.id == response_id, StoredResponse.user_id == principal.user_id,
        StoredResponse.agency_id == principal.agency_id))
    if found is None:  # another user's response does not exist for this caller
        raise NotFound("저장된 응답을 찾을 수 없습니다. 같은 사용자가 store를 켜고 만든 응답만 이어 쓸 수 있습니다.",
                       f"No stored response '{response_id}' for this user (only your own responses made with "
                       "store=true can be read or continued).", param="previous_response_id")
    return found


def sealed_where(column: str, response_id: str) -> str:
    """What a stored response's sealed column is bound to (also what the sweep re-seals it with)."""
    return f"stored_responses.{column}:{response_id}"


def _opened(session: Session, stored: StoredResponse, column: str) -> Any:
    """A column's JSON, opened when sealed (S/C); bound to the response's id and agency."""
    return open_json(session, stored.agency_id, sealed_where(column, stored.id), getattr(stored, column))


def continuation(session: Session, principal: Principal, response_id: str
                 ) -> tuple[list[dict[str, Any]], list[GradedItem]]:
    """The conversation so far, and its grade as an item carried into the next request."""
    stored = _owned(session, principal, response_id)
    return _opened(session, stored, "messages"), [GradedItem("history", f"response:{stored.id}",
                                                             Grade.parse(stored.grade))]


def read(session: Session, principal: Principal, response_id: str) -> dict[str, Any]:
    return _opened(session, _owned(session, principal, response_id), "response")


def conversation(session: Session, principal: Principal, response_id: str) -> list[dict[str, Any]]:
    """The stored conversation: what the response was given, then its own output."""
    return _opened(session, _owned(session, principal, response_id), "messages")


def save(session: Session, principal: Principal, response: dict[str, Any], grade: str,
         messages: list[dict[str, Any]]) -> None:
    def stored(column: str, value: Any) -> str:
        return seal_json(session, grade, principal.agency_id, sealed_where(column, response["id"]), value)

    session.add(StoredResponse(id=response["id"], user_id=principal.user_id, agency_id=principal.agency_id,
                               model=str(response.get("model") or "")[:200], grade=grade,
                               messages=stored("messages", messages), response=stored("response", response)))


def remove(session: Session, principal: Principal, response_id: str) -> None:
    _owned(session, principal, response_id)
    session.execute(delete(StoredResponse).where(StoredResponse.id == response_id))
