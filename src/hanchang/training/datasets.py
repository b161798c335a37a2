"""Fine-tuning datasets: chat examples in OpenAI's format, versioned per agency.

One example is one line of OpenAI's chat fine-tuning JSONL:

    {"messages": [{"role": "system", "content": "…"}, {"role": "user", "content": "…"},
                  {"role": "assistant", "content": "…"}]}

A dataset is built from such a file, from reviewed answers of the window (👍, and 👎 an admin
corrected), or from a collection (`generate.py`). Whatever the source, personal data is replaced
by typed placeholders (`[전화번호1]`) before it is stored, the examples are split once into train
and held-out with a recorded seed, the grade is the most sensitive source's, and S/C examples
are sealed with the agency's key. A dataset's `file_id` is what OpenAI's `training_file` names.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.guard.pii import scan
from hanchang.guard.vault import PseudonymVault
from hanchang.store.keyring import open_json, seal_json
from hanchang.store.training_tables import TrainingDataset

MAX_EXAMPLES = 20_000
MAX_BYTES = 50 * 1024 * 1024
MAX_ERRORS_SHOWN = 10
ROLES = ("system", "user", "assistant")
DEFAULT_HOLDOUT = 0.1


@dataclass(frozen=True)
class Split:
    train: list[dict[str, Any]]
    holdout: list[dict[str, Any]]


# -- reading a file ----------------------------------------------------------------------------
def _problem(example: Any) -> str | None:
    """What is wrong with one example, in a few words, or None."""
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list):
        return "needs a 'messages' list"
    messages = example["messages"]
    if len(messages) < 2:
        return "needs at least a user and an assistant message"
    for position, message in enumerate(messages, 1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"message {position}: role must be one of {', '.join(ROLES)}"
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            return f"message {position}: content must be non-empty text"
        if set(message) - {"role", "content", "weight", "name"}:
            return f"message {position}: unknown field(s) {', '.join(sorted(set(message) - {'role', 'content'}))}"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's answer"
    if not any(m["role"] == "user" for m in messages):
        return "needs a user message"
    return None


def parse_jsonl(data: bytes | str) -> list[dict[str, Any]]:
    """The examples of a chat-format JSONL file; every bad line is reported with its number."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise InvalidInput(f"학습 파일은 {MAX_BYTES // 1024 // 1024}MB까지입니다.",
                               f"a training file holds at most {MAX_BYTES // 1024 // 1024} MB")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("학습 파일은 UTF-8 텍스트(JSONL)여야 합니다.",
                               "a training file must be UTF-8 text (JSONL)") from None
    examples, errors = [], []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON ({exc.msg})")
            continue
        problem = _problem(example)
        if problem:
            errors.append(f"line {number}: {problem}")
            continue
        examples.append({"messages": [{"role": m["role"], "content": m["content"]} for m in example["messages"]]})
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN]) + (f"; … {len(errors) - MAX_ERRORS_SHOWN} more"
                                                         if len(errors) > MAX_ERRORS_SHOWN else "")
        raise InvalidInput(f"학습 파일의 {len(errors)}개 줄이 OpenAI 대화 형식이 아닙니다. 고쳐서 올리세요: {shown}",
                           f"{len(errors)} line(s) are not OpenAI chat format: {shown}")
    _check_count(examples)
    return examples


def _check_count(examples: list[Any]) -> None:
    if not examples:
        raise InvalidInput("학습 예시가 없습니다.", "the dataset has no examples")
    if len(examples) > MAX_EXAMPLES:
        raise InvalidInput(f"학습 데이터는 {MAX_EXAMPLES}개 예시까지입니다. 나누어 만드세요.",
                           f"a dataset holds at most {MAX_EXAMPLES} examples")


# -- what every source goes through ------------------------------------------------------------
def pseudonymise(examples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Examples with personal data replaced by typed placeholders (one vault per example, so the
    same number in the question and the answer stays the same placeholder); how many replaced."""
    replaced, cleaned = 0, []
    for example in examples:
        vault = PseudonymVault()
        messages = []
        for message in example["messages"]:
            findings = scan(message["content"])
            replaced += len(findings)
            messages.append({**message, "content": vault.replace(message["content"], findings)})
        cleaned.append({"messages": messages})
    return cleaned, replaced


def split(examples: list[dict[str, Any]], holdout: float, seed: int) -> Split:
    """A seeded shuffle, then the first `holdout` share (at least one example) held out."""
    if not 0 <= holdout < 1:
        raise InvalidInput("held-out 비율은 0 이상 1 미만입니다.", "the held-out share is in [0, 1)")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(examples) * holdout)) if holdout > 0 else 0
    if held >= len(examples):
        raise InvalidInput("예시가 너무 적어 학습용과 검증용으로 나눌 수 없습니다(최소 2개).",
                           "too few examples to split into train and held-out (2 at least)")
    return Split([examples[i] for i in order[held:]], [examples[i] for i in order[:held]])


def digest(parts: Split) -> str:
    canonical = json.dumps({"train": parts.train, "holdout": parts.holdout}, ensure_ascii=False,
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- stored versions ---------------------------------------------------------------------------
def _where(row: TrainingDataset) -> str:
    return f"training_datasets.examples:{row.file_id}"


def _latest(session: Session, agency_id: int, name: str) -> TrainingDataset | None:
    return session.scalar(select(TrainingDataset).where(TrainingDataset.agency_id == agency_id,
                                                        TrainingDataset.name == name)
                          .order_by(TrainingDataset.version.desc()).limit(1))


def save(session: Session, principal: Principal, name: str, examples: list[dict[str, Any]], grade: Grade,
         source: str, *, holdout: float = DEFAULT_HOLDOUT, seed: int = 0) -> TrainingDataset:
    """A new version of the agency's dataset `name`: pseudonymised, split, sealed, audited."""
    require(principal, "training.manage")
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("데이터셋 이름은 1~100자입니다.", "a dataset's name has 1 to 100 characters")
    _check_count(examples)
    cleaned, replaced = pseudonymise(examples)
    parts = split(cleaned, holdout, seed)
    latest = _latest(session, principal.agency_id, name)
    row = TrainingDataset(file_id=f"file-{uuid.uuid4().hex[:24]}", agency_id=principal.agency_id, name=name,
                          version=(latest.version + 1) if latest else 1, grade=grade.value,
                          sha256=digest(parts), source=source[:300], train_count=len(parts.train),
                          holdout_count=len(parts.holdout), split_seed=seed, pii_replaced=replaced,
                          examples="{}", deleted=False, created_by=principal.user_id, bytes=0)
    stored = {"train": parts.train, "holdout": parts.holdout}
    row.bytes = len(json.dumps(stored, ensure_ascii=False).encode("utf-8"))
    row.examples = seal_json(session, grade, principal.agency_id, _where(row), stored)
    session.add(row)
    session.flush()
    trail.record_by(session, principal, "training.dataset.create",
                    {"dataset": name, "version": row.version, "file_id": row.file_id, "grade": row.grade,
                     "sha256": row.sha256, "train": row.train_count, "holdout": row.holdout_count,
                     "pii_replaced": replaced, "source": row.source})
    return row


def resplit(session: Session, principal: Principal, row: TrainingDataset, holdout: float, seed: int) -> TrainingDataset:
    """The same examples split again, as a new version (earlier versions and their jobs stay)."""
    parts = examples_of(session, row)
    return save(session, principal, row.name, parts.train + parts.holdout, Grade.parse(row.grade),
                f"split of v{row.version}", holdout=holdout, seed=seed)


def examples_of(session: Session, row: TrainingDataset) -> Split:
    if row.deleted:
        raise NotFound(f"데이터셋 '{row.name}' v{row.version}은(는) 삭제되었습니다.",
                       f"dataset '{row.name}' v{row.version} was deleted")
    stored = open_json(session, row.agency_id, _where(row), row.examples)
    return Split(stored["train"], stored["holdout"])


def get(session: Session, principal: Principal, ref: str, version: int | None = None) -> TrainingDataset:
    """The agency's dataset by file id (`file-…`) or by name (its latest version unless named).
    Another agency's dataset is 'not found': a caller never learns that it exists."""
    query = select(TrainingDataset).where(TrainingDataset.agency_id == principal.agency_id,
                                          TrainingDataset.deleted.is_(False))
    if ref.startswith("file-"):
        row = session.scalar(query.where(TrainingDataset.file_id == ref))
    elif version:
        row = session.scalar(query.where(TrainingDataset.name == ref, TrainingDataset.version == version))
    else:
        row = session.scalar(query.where(TrainingDataset.name == ref).order_by(TrainingDataset.version.desc()).limit(1))
    if row is None:
        raise NotFound(f"학습 데이터셋 '{ref}'{f' v{version}' if version else ''}이(가) 없습니다.",
                       f"no training dataset '{ref}'" + (f" v{version}" if version else ""), param="training_file")
    return row


def list_datasets(session: Session, principal: Principal) -> list[TrainingDataset]:
    return list(session.scalars(select(TrainingDataset).where(
        TrainingDataset.agency_id == principal.agency_id, TrainingDataset.deleted.is_(False))
        .order_by(TrainingDataset.name, TrainingDataset.version.desc())))


def delete(session: Session, principal: Principal, row: TrainingDataset) -> None:
    """The examples are wiped at once (the row stays, so jobs still name what they trained on)."""
    require(principal, "training.manage", row)
    row.deleted, row.examples = True, "{}"
    trail.record_by(session, principal, "training.dataset.delete",
                    {"dataset": row.name, "version": row.version, "file_id": row.file_id, "sha256": row.sha256})


def describe(row: TrainingDataset) -> dict[str, Any]:
    """OpenAI's file object, with what Hanchang adds under its own names."""
    return {"id": row.file_id, "object": "file", "bytes": row.bytes, "purpose": "fine-tune",
            "filename": f"{row.name}.v{row.version}.jsonl", "status": "processed", "status_details": None,
            "created_at": int(row.created_at.timestamp()) if row.created_at else None, "expires_at": None,
            "hanchang": {"name": row.name, "version": row.version, "grade": row.grade, "sha256": row.sha256,
                         "train": row.train_count, "holdout": row.holdout_count, "split_seed": row.split_seed,
                         "pii_replaced": row.pii_replaced, "source": row.source}}
