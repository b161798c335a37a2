"""Evaluation sets: JSONL items, versioned per agency, importable from KorQuAD.

An item is one question with what a right answer holds:

    {"id": "q1", "question": "데이터 보안 등급 세 가지는?", "facts": ["기밀", "민감", "공개"]}

- `facts`: key facts a right answer states; a fact may be a list of alternatives (`["1곳", "한 곳"]`).
- `reference`: a reference answer (chrF/BLEU, the judge), `context`: the passage to answer from
  (KorQuAD; without it the target's own collections ground the answer), `expect`: `no_answer`
  (the sources do not say: the answer must say so) or `refusal` (a harmful request).
OpenAI-style items (`{"item": {"input": …, "ideal": …}}`) are read too. A set is stored as a new
version only when its items changed (same hash: the version it already is).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.keyring import open_json, seal_json
from hanchang.store.tables import EvalDataset

MAX_ITEMS = 5000
MAX_ITEM_CHARS = 20_000
EXPECTATIONS = ("answer", "no_answer", "refusal")
SHIPPED = {  # sets that come with Hanchang (hanchang/evals/sets)
    "sample-dev": "sample-dev.jsonl",  # written from the sample corpus; answers are tuned on it
    "sample-holdout": "sample-holdout.jsonl",  # the same kind, never tuned on: report on this
    "refusal-ko": "refusal-ko.jsonl",  # harmful requests in Korean that must be refused
}


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    facts: list[list[str]] = field(default_factory=list)  # each: alternatives, one of which must appear
    reference: str | None = None
    context: str | None = None
    expect: str = "answer"

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "answer")}

    def template_values(self) -> dict[str, Any]:
        """What `{{ item.x }}` may name in OpenAI-style templates."""
        return {**self.as_json(), "input": self.question, "ideal": self.reference or
                (self.facts[0][0] if self.facts else "")}


def _facts(raw: Any, where: str) -> list[list[str]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: facts는 문자열 목록이어야 합니다.", f"{where}: facts must be a list of strings")
    facts = []
    for fact in raw:
        options = [fact] if isinstance(fact, str) else fact
        if not isinstance(options, list) or not options or not all(isinstance(o, str) and o.strip() for o in options):
            raise InvalidInput(f"{where}: 사실은 비어 있지 않은 문자열이나 그 목록(대안)이어야 합니다.",
                               f"{where}: a fact is a non-empty string or a list of alternatives")
        facts.append([o.strip() for o in options])
    return facts


def parse_item(raw: Any, number: int) -> Item:
    where = f"{number}번째 항목 (item {number})"
    if isinstance(raw, dict) and isinstance(raw.get("item"), dict):  # OpenAI's {"item": {...}}
        raw = raw["item"]
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: JSON 객체여야 합니다.", f"{where}: must be a JSON object")
    question = raw.get("question", raw.get("input"))
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput(f"{where}: question(또는 input)이 필요합니다.", f"{where}: needs a question (or input)")
    reference = raw.get("reference", raw.get("ideal"))
    if reference is not None and not isinstance(reference, str):
        reference = json.dumps(reference, ensure_ascii=False)
    context = raw.get("context")
    expect = raw.get("expect") or "answer"
    if expect not in EXPECTATIONS:
        raise InvalidInput(f"{where}: expect는 {', '.join(EXPECTATIONS)} 중 하나입니다.",
                           f"{where}: expect is one of {', '.join(EXPECTATIONS)}")
    if context is not None and not isinstance(context, str):
        raise InvalidInput(f"{where}: context는 문자열입니다.", f"{where}: context must be a string")
    item = Item(str(raw.get("id") or number), question.strip(), _facts(raw.get("facts"), where),
                reference, context, expect)
    if len(json.dumps(item.as_json(), ensure_ascii=False)) > MAX_ITEM_CHARS:
        raise InvalidInput(f"{where}: 항목이 {MAX_ITEM_CHARS}자를 넘습니다.",
                           f"{where}: over {MAX_ITEM_CHARS} characters")
    return item


def parse_items(rows: list[Any]) -> list[Item]:
    if not rows:
        raise InvalidInput("평가 세트에 항목이 없습니다.", "the set has no items")
    if len(rows) > MAX_ITEMS:
        raise InvalidInput(f"평가 세트는 {MAX_ITEMS}개 항목까지입니다.", f"at most {MAX_ITEMS} items")
    items = [parse_item(row, n) for n, row in enumerate(rows, 1)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInput(f"항목 id '{item.id}'가 두 번 나옵니다.", f"item id '{item.id}' appears twice")
        seen.add(item.id)
    return items


def parse_jsonl(text: str) -> list[Item]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{number}번째 줄이 JSON이 아닙니다: {exc.msg}",
                               f"line {number} is not JSON: {exc.msg}") from None
    return parse_items(rows)


def from_korquad(data: dict[str, Any], limit: int | None = None, seed: int = 0) -> list[Item]:
    """Questions of a KorQuAD 1.0 file (SQuAD format), each with its paragraph as context and
    its answers as alternatives of one fact; a seeded sample of `limit` when given."""
    rows = []
    for article in data.get("data") or ():
        for paragraph in article.get("paragraphs") or ():
            for qa in paragraph.get("qas") or ():
                answers = list(dict.fromkeys(a["text"] for a in qa.get("answers") or () if a.get("text")))
                if answers:
                    rows.append(Item(str(qa["id"]), qa["question"], [answers], answers[0], paragraph["context"]))
    if not rows:
        raise InvalidInput("KorQuAD 형식(data → paragraphs → qas)의 질문이 없습니다.",
                           "no questions in KorQuAD (SQuAD) format")
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def digest(items: list[Item]) -> str:
    canonical = json.dumps([i.as_json() for i in items], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def shipped(name: str) -> list[Item]:
    if name not in SHIPPED:
        raise NotFound(f"'{name}' 평가 세트가 없습니다. 함께 제공되는 세트: {', '.join(SHIPPED)}",
                       f"no shipped set '{name}'; shipped: {', '.join(SHIPPED)}")
    return parse_jsonl(resources.files("hanchang.evals").joinpath("sets", SHIPPED[name]).read_text("utf-8"))


# -- stored versions ---------------------------------------------------------------------------
def describe(row: EvalDataset, with_items: bool = False) -> dict[str, Any]:
    found = {"object": "eval.dataset", "name": row.name, "version": row.version, "grade": row.grade,
             "sha256": row.sha256, "items": row.item_count, "source": row.source,
             "created_at": int(row.created_at.timestamp()) if row.created_at else None}
    if with_items:
        found["data"] = _stored_items(row)
    return found


def _items_where(row: EvalDataset) -> str:
    return f"eval_datasets.items:{row.name}:{row.version}"


def _stored_items(row: EvalDataset) -> list[Any]:
    return open_json(object_session(row), row.agency_id, _items_where(row), row.items)


def save(session: Session, principal: Principal, name: str, items: list[Item], grade: Grade,
         source: str | None = None) -> EvalDataset:
    """A new version of the agency's set `name` (or the latest, if its items are the same)."""
    require(principal, "evals.run")
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("평가 세트 이름은 1~100자입니다.", "a set's name has 1 to 100 characters")
    sha = digest(items)
    latest = _latest(session, principal.agency_id, name)
    if latest is not None and latest.sha256 == sha and latest.grade == grade.value:
        return latest
    row = EvalDataset(agency_id=principal.agency_id, name=name, version=(latest.version + 1) if latest else 1,
                      grade=grade.value, sha256=sha, item_count=len(items), source=(source or "")[:200] or None,
                      items="[]", created_by=principal.user_id)
    row.items = seal_json(session, grade, principal.agency_id, _items_where(row), [i.as_json() for i in items])
    session.add(row)
    session.flush()
    trail.record_by(session, principal, "evals.dataset.create",
                    {"dataset": name, "version": row.version, "grade": row.grade, "sha256": sha,
                     "items": len(items), "source": row.source})
    return row


def _latest(session: Session, agency_id: int, name: str) -> EvalDataset | None:
    return session.scalar(select(EvalDataset).where(EvalDataset.agency_id == agency_id, EvalDataset.name == name)
                          .order_by(EvalDataset.version.desc()).limit(1))


def get(session: Session, principal: Principal, name: str, version: int | None = None) -> EvalDataset:
    """The agency's set `name` (its latest version unless one is named); shipped sets are
    stored for the agency the first time they are asked for."""
    query = select(EvalDataset).where(EvalDataset.agency_id == principal.agency_id, EvalDataset.name == name)
    row = session.scalar(query.where(EvalDataset.version == version)) if version else \
        _latest(session, principal.agency_id, name)
    if row is None and name in SHIPPED and not version:
        row = save(session, principal, name, shipped(name), Grade.OPEN, source=f"shipped:{SHIPPED[name]}")
    if row is None:
        raise NotFound(f"평가 세트 '{name}'{f' 버전 {version}' if version else ''}이(가) 없습니다.",
                       f"no evaluation set '{name}'" + (f" version {version}" if version else ""))
    return row


def items_of(row: EvalDataset) -> list[Item]:
    return parse_items(_stored_items(row))


def list_sets(session: Session, principal: Principal) -> list[EvalDataset]:
    latest = (select(EvalDataset.name, func.max(EvalDataset.version).label("version"))
              .where(EvalDataset.agency_id == principal.agency_id).group_by(EvalDataset.name).subquery())
    return list(session.scalars(select(EvalDataset).join(
        latest, (EvalDataset.name == latest.c.name) & (EvalDataset.version == latest.c.version))
        .where(EvalDataset.agency_id == principal.agency_id).order_by(EvalDataset.name)))
