"""Plain chat: the user's messages, plus attached documents, as one gateway call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal
from hanchang.gateway.router import Call


@dataclass(frozen=True)
class AttachedText:
    name: str
    content: str
    grade: Grade


def attachment_message(attachments: list[AttachedText]) -> dict[str, Any]:
    parts = [f"[첨부 문서: {a.name} · {a.grade.korean}({a.grade.value})]\n{a.content}" for a in attachments]
    return {"role": "user", "content": "다음 첨부 문서를 참고하세요.\n\n" + "\n\n".join(parts)}


def chat_call(principal: Principal, body: dict[str, Any], declared: Grade,
              attachments: list[AttachedText], endpoint: str = "chat.completions") -> Call:
    """A gateway call whose prompt carries the attachments, and whose grade knows of them."""
    if attachments:
        messages = list(body["messages"])
        # Just before the last user turn, so the question stays last.
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"),
                        default=len(messages))
        messages.insert(last_user, attachment_message(attachments))
        body = {**body, "messages": messages}
    items = [GradedItem("attachment", a.name, a.grade) for a in attachments]
    return Call(principal, endpoint, body, grade=declared, items=items)
