"""A chat message's text, however the client shaped it (a string, or a list of content parts)."""

from __future__ import annotations

from typing import Any


def message_text(message: dict[str, Any]) -> str:
    """The text of one OpenAI chat message: a string content, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The latest user turn's text: what a question is, for retrieval and budgets."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""
