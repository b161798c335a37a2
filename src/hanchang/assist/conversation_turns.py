"""A turn of a window conversation: store the question, answer it (streamed), store the answer.

Nothing is lost: the question is stored before any model is asked; a refusal is stored as a
notice; a broken answer is stored with its error; an answer the user stopped keeps what was
written. The answer itself runs through `answer.open_stream` like every other door's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from hanchang.assist import answer, conversations, qa
from hanchang.assist.platform import Platform
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.core.policy import GradedItem
from hanchang.core.principal import Principal


@dataclass(frozen=True)
class Question:
    content: str
    model: str | None
    grade: Grade
    collections: list[int]
    regenerate: bool = False


# What the window is told, in order: Began, Wrote..., then Done; or Refused alone.
@dataclass(frozen=True)
class Began:
    model: str
    data_grade: str
    route_notice: str | None


@dataclass(frozen=True)
class Wrote:
    text: str


@dataclass(frozen=True)
class Done:
    message_id: int
    meta: dict[str, Any]
    model: str
    data_grade: str | None  # None for the 'no sources' answer (its grade is the question's)


@dataclass(frozen=True)
class Refused:
    message: str  # Korean (English), also stored as the conversation's notice
    message_id: int


TurnEvent = Began | Wrote | Done | Refused


class Turn:
    """A question stored in its conversation, ready to be answered."""

    def __init__(self, platform: Platform, principal: Principal, conversation_id: int, question: Question,
                 history: list[dict[str, str]], carried: list[GradedItem]):
        self.platform, self.principal, self.conversation_id = platform, principal, conversation_id
        self.question = question
        self.model = platform.gateway.registry.requested(question.model)
        self.agent_id: int | None = None  # known once the answer is prepared
        self.request = answer.AnswerRequest({"model": self.model, "messages": history}, question.grade,
                                            collections=list(question.collections), carried=carried)

    def _save(self, role: str, content: str, meta: dict, model: str | None = None, grade: str = "") -> int:
        # An answer is stored with the grade of everything that went into it (effective grade),
        # and with the agent that gave it (its 👍 rate in the library counts this answer).
        with self.platform.db.session() as session:
            c = conversations.owned(session, self.principal.user_id, self.conversation_id)
            return conversations.add(session, c, role, content, grade or self.question.grade.value, model, meta,
                                     self.agent_id).id

    async def events(self) -> AsyncIterator[TurnEvent]:
        text, meta, model_used, stored = "", {}, None, False
        effective = self.question.grade.value
        try:
            try:
                stream = await answer.open_stream(self.platform, self.principal, self.request)
            except HanchangError as exc:
                notice_id = await run_in_threadpool(self._save, "notice", exc.message, {"code": exc.code})
                stored = True
                yield Refused(exc.message, notice_id)
                return
            call = stream.call
            self.agent_id = call.agent_id
            if stream.no_sources:
                effective = call.report()["data_grade"]  # set when the gateway recorded it
                meta = {"citations": [], "no_sources": True}
                text = qa.NO_SOURCES
                message_id = await run_in_threadpool(self._save, "assistant", text, meta, self.model, effective)
                stored = True
                yield Wrote(text)
                yield Done(message_id, meta, self.model, None)
                return
            model_used, report = stream.model, call.report()
            effective = report["data_grade"]
            meta = {"citations": stream.citations or []}  # kept with a stopped answer too
            yield Began(model_used, effective, report["route_notice"])
            ending: answer.Finished | answer.Failed | None = None
            async with aclosing(stream.events()) as events:
                async for event in events:
                    if isinstance(event, answer.Piece):
                        if event.text:
                            text += event.text
                            yield Wrote(event.text)
                    else:
                        ending = event
            meta = {"citations": stream.citations or [], "hanchang": call.report()}
            if isinstance(ending, answer.Failed):
                meta["error"] = ending.error.message
            message_id = await run_in_threadpool(self._save, "assistant", text, meta, model_used, effective)
            stored = True
            yield Done(message_id, meta, model_used, effective)
        finally:
            if not stored and text:  # the user pressed stop: keep what was written
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(self._save, "assistant", text, {**meta, "stopped": True},
                                            model_used, effective)


async def ask(platform: Platform, principal: Principal, conversation_id: int, question: Question) -> Turn:
    """Store the question (or, to regenerate, drop the last answer) and return the turn to run.
    An unknown conversation or an empty question raises here, before anything streams."""
    def before():
        with platform.db.session() as session:
            c = conversations.owned(session, principal.user_id, conversation_id)
            content = conversations.drop_last_answer(session, c) if question.regenerate else question.content.strip()
            if not content:
                raise HanchangError("질문을 입력하세요.", "the question is empty")
            if not question.regenerate:  # a question about S/C collections is sealed like them
                conversations.add(session, c, "user", content, question.grade.value,
                                  sealed=conversations.about_sealed(session, question.collections))
            return conversations.history(session, c)

    history, carried = await run_in_threadpool(before)
    return Turn(platform, principal, conversation_id, question, history, carried)
