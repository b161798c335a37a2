"""Where fine-tuning examples come from besides a file: the window's reviewed answers, and a
collection's passages turned into grounded question/answer pairs by a teacher model.

The teacher is any chat model of the registry whose zone clears the collection's grade: it is
checked here, and every call goes through the gateway at that grade as well, so a passage never
reaches a model outside its zone (an upstream recording in the tests proves it).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hanchang.assist import answer
from hanchang.assist.platform import Platform
from hanchang.core.errors import InvalidInput, NotAllowed
from hanchang.core.grades import Grade, highest, passage_grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.knowledge import collections
from hanchang.knowledge.sealed_text import readable_rows
from hanchang.knowledge.support import SupportIndex
from hanchang.store import sealed_messages
from hanchang.store.keyring import keyring_of
from hanchang.store.tables import Agency, Chunk, Collection, Conversation, Document, Feedback, Message, User

ENDPOINT = "training.generate"
GROUNDED_PROMPT = "다음 자료를 근거로 질문에 답하세요.\n\n자료:\n{passage}\n\n질문: {question}"
TEACHER_PROMPT = (
    "다음 자료를 읽고, 자료만으로 답할 수 있는 질문 {n}개와 그 답을 만드세요. 답은 자료의 표현을 살려 "
    "한두 문장으로 쓰세요. JSON 목록으로만 답하세요: "
    '[{{"question": "…", "answer": "…"}}]\n\n자료:\n{passage}'
)
MIN_PASSAGE_CHARS = 120
MIN_SUPPORT = 0.5  # share of the answer's morphemes found in the passage


@dataclass(frozen=True)
class Built:
    examples: list[dict[str, Any]]
    grade: Grade
    source: str
    skipped: int = 0


def grounded_example(passage: str, question: str, answer_text: str) -> dict[str, Any]:
    """One training example in the shape the model is asked at run time: passage, question, answer."""
    return {"messages": [{"role": "user", "content": GROUNDED_PROMPT.format(passage=passage, question=question)},
                         {"role": "assistant", "content": answer_text}]}


# -- reviewed answers of the window ------------------------------------------------------------
def from_feedback(session: Session, principal: Principal) -> Built:
    """👍 answers, and 👎 answers an admin corrected (the expected answer is the target), of the
    agency, each with the question asked just before it. Grade: the highest message grade used."""
    require(principal, "training.manage")
    rows = session.execute(
        select(Feedback, Message).join(Message, Message.id == Feedback.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id).join(User, User.id == Conversation.user_id)
        .join(Agency, Agency.id == User.agency_id)
        .where(Agency.id == principal.agency_id, Message.role == "assistant")
        .where((Feedback.rating > 0) | (Feedback.expected_answer != ""))
        .order_by(Feedback.id)).all()
    examples, grade, seen = [], Grade.OPEN, set()
    for feedback, message in rows:
        if message.id in seen:  # two users rated the same answer
            continue
        seen.add(message.id)
        question = session.scalar(select(Message).where(
            Message.conversation_id == message.conversation_id, Message.id < message.id, Message.role == "user")
            .order_by(Message.id.desc()).limit(1))
        if question is None:
            continue
        target = feedback.expected_answer.strip() if feedback.rating < 0 else sealed_messages.content(session, message)
        asked = sealed_messages.content(session, question)
        if not target.strip() or target.startswith(sealed_messages.UNREADABLE[:10]):
            continue
        examples.append({"messages": [{"role": "user", "content": asked}, {"role": "assistant", "content": target}]})
        grade = highest(grade, Grade.parse(message.grade), Grade.parse(question.grade))
    if not examples:
        raise InvalidInput("학습에 쓸 검토된 답변이 없습니다(👍 또는 관리자가 고친 👎).",
                           "no reviewed answers to train on (👍, or 👎 with an expected answer)")
    return Built(examples, grade, "feedback")


# -- a collection, through a teacher -----------------------------------------------------------
def passages(session: Session, collection: Collection, limit: int, seed: int) -> tuple[list[str], Grade]:
    """Up to `limit` passages of the collection's current document versions (a seeded sample),
    opened with the agency's key; and the highest grade among the documents they come from."""
    latest = (select(Chunk.document_id, func.max(Chunk.version_id).label("version_id"))
              .where(Chunk.collection_id == collection.id).group_by(Chunk.document_id).subquery())
    rows = session.execute(
        select(Chunk.id, Chunk.version_id, Chunk.ordinal, Chunk.collection_id, Chunk.text, Chunk.section,
               Document.grade.label("document_grade"))
        .join(latest, (Chunk.document_id == latest.c.document_id) & (Chunk.version_id == latest.c.version_id))
        .join(Document, Document.id == Chunk.document_id).order_by(Chunk.id)).all()
    opened = [r for r in readable_rows(keyring_of(session), {collection.id: collection.agency_id}, rows, session)
              if len(r["text"]) >= MIN_PASSAGE_CHARS]
    random.Random(seed).shuffle(opened)
    chosen = opened[:limit]
    grade = highest(Grade.parse(collection.grade),
                    *(passage_grade(collection.grade, row["document_grade"]) for row in chosen))
    return [r["text"] for r in chosen], grade


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """The question/answer pairs of a teacher's reply (a JSON list, possibly fenced or chatty)."""
    match = re.search(r"\[.*\]", text, re.S)
    candidates = [match.group(0)] if match else []
    candidates += re.findall(r"\{[^{}]*\}", text, re.S)
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        items = data if isinstance(data, list) else [data]
        pairs = [(str(i.get("question", "")).strip(), str(i.get("answer", "")).strip())
                 for i in items if isinstance(i, dict)]
        pairs = [(q, a) for q, a in pairs if q and a]
        if pairs:
            return pairs
    return []


async def from_collection(platform: Platform, principal: Principal, collection_ref: str, teacher: str, *,
                          passages_limit: int = 40, per_passage: int = 2, seed: int = 0) -> Built:
    """Grounded question/answer pairs a teacher writes from the collection's passages; a pair
    whose answer the passage does not support is dropped."""
    require(principal, "training.manage")
    with platform.db.session() as session:
        collection = collections.get_readable(session, principal, collection_ref)
        texts, grade = passages(session, collection, passages_limit, seed)
        name = collection.name
    if not texts:
        raise InvalidInput(f"'{name}' 지식베이스에 질문을 만들 만한 문단이 없습니다.",
                           f"collection '{name}' has no passages long enough to generate from")
    spec = platform.gateway.registry.get(teacher)
    if spec.kind != "chat" or not spec.clears(grade):
        raise NotAllowed(f"교사 모델 '{spec.name}'({spec.describe_korean()})은(는) {grade.korean}({grade.value}) "
                         "등급 자료를 볼 수 없습니다. 이 등급을 처리할 수 있는 내부망 모델을 고르세요.",
                         f"teacher '{spec.name}' is not cleared for grade {grade.value}", param="teacher")
    examples, skipped = [], 0
    for passage in texts:
        body = {"model": spec.name, "temperature": 0, "max_tokens": 400,
                "messages": [{"role": "user", "content": TEACHER_PROMPT.format(n=per_passage, passage=passage)}]}
        done = await answer.complete(platform, principal, answer.AnswerRequest(body, grade, endpoint=ENDPOINT))
        support = SupportIndex([passage])
        for question, reply in parse_pairs(done.text)[:per_passage]:
            if support.best(reply).score < MIN_SUPPORT:
                skipped += 1
                continue
            examples.append(grounded_example(passage, question, reply))
    if not examples:
        raise InvalidInput(f"교사 모델 '{spec.name}'이(가) 자료에 근거한 질문·답을 만들지 못했습니다. "
                           "다른 모델로 다시 시도하세요.", f"teacher '{spec.name}' produced no grounded pairs")
    return Built(examples, grade, f"collection:{name} via {spec.name}", skipped)
