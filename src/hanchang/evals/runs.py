"""Evals and their runs, in OpenAI's Evals API shapes: made, checked, listed, cancelled.

An eval names its testing criteria; a run names a data source (a stored set and version, or
items inline as OpenAI's `file_content`, or samples already written: `jsonl`) and a target.
Before anything is sent, the run's grade (the set's) must be cleared by the target model and by
every judge model: a run over an S set with a judge outside S's zone is refused (403) and the
refusal audited. Every run keeps the set's name, version and hash, its config, Hanchang's
version and the git commit. Running them is `runner`'s; what they found, `results`'.
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang import __version__
from hanchang.assist.platform import Platform
from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotAllowed, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import can, require
from hanchang.core.policy import decide_model_access
from hanchang.core.principal import Principal
from hanchang.evals import datasets, scorers, targets
from hanchang.evals.datasets import Item
from hanchang.evals.results import run_items_where, timestamp
from hanchang.gateway.errors import ModelNotFound
from hanchang.knowledge import collections
from hanchang.store.keyring import seal_json
from hanchang.store.tables import Eval, EvalRun, utcnow

FINAL = ("completed", "failed", "canceled")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit Hanchang runs from, when it runs from a checkout ("-dirty": with changes)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                 capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def _meta(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in raw.items()):
        raise InvalidInput("metadata는 16개까지의 문자열 키·값입니다(키 64자, 값 512자).",
                           "metadata holds up to 16 string keys and values (64 / 512 characters)")
    return raw


# -- evals ------------------------------------------------------------------------------------
def describe_eval(row: Eval) -> dict[str, Any]:
    return {"object": "eval", "id": row.id, "name": row.name, "created_at": timestamp(row.created_at),
            "data_source_config": json.loads(row.data_source_config),
            "testing_criteria": json.loads(row.testing_criteria), "metadata": json.loads(row.meta or "{}")}


def create_eval(session: Session, principal: Principal, name: Any, data_source_config: Any,
                testing_criteria: Any, metadata: Any = None) -> Eval:
    require(principal, "evals.run")
    criteria = scorers.check_criteria(testing_criteria)
    config = data_source_config if isinstance(data_source_config, dict) else {"type": "custom"}
    if config.get("type") not in ("custom", "logs", "stored_completions"):
        raise InvalidInput("data_source_config.type은 custom입니다.", "data_source_config.type must be custom")
    schema = config.get("item_schema") or {"type": "object", "properties": {
        "question": {"type": "string"}, "facts": {"type": "array"}, "reference": {"type": "string"},
        "context": {"type": "string"}, "expect": {"type": "string"}}}
    shown = {"type": "custom", "schema": {"type": "object", "properties": {"item": schema, **(
        {"sample": {"type": "object"}} if config.get("include_sample_schema", True) else {})}}}
    label = (name if isinstance(name, str) and name.strip() else "평가")[:200]
    row = Eval(id=new_id("eval"), agency_id=principal.agency_id, name=label,
               data_source_config=json.dumps(shown, ensure_ascii=False),
               testing_criteria=json.dumps(criteria, ensure_ascii=False),
               meta=json.dumps(_meta(metadata), ensure_ascii=False), created_by=principal.user_id)
    session.add(row)
    session.flush()
    trail.record_by(session, principal, "evals.create", {"eval": row.id, "name": label,
                                                          "criteria": [c["name"] for c in criteria]})
    return row


def get_eval(session: Session, principal: Principal, eval_id: str) -> Eval:
    row = session.get(Eval, eval_id)
    if row is None or not can(principal, "evals.read", row):
        raise NotFound(f"평가 '{eval_id}'가 없습니다.", f"no eval '{eval_id}'")
    return row


def list_evals(session: Session, principal: Principal, limit: int = 20, after: str | None = None) -> list[Eval]:
    query = select(Eval).where(Eval.agency_id == principal.agency_id).order_by(Eval.created_at.desc(), Eval.id)
    rows = list(session.scalars(query))
    if after:
        ids = [r.id for r in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else []
    return rows[:limit]


def update_eval(session: Session, principal: Principal, row: Eval, name: Any, metadata: Any) -> Eval:
    require(principal, "evals.run", row)
    if isinstance(name, str) and name.strip():
        row.name = name.strip()[:200]
    if metadata is not None:
        row.meta = json.dumps(_meta(metadata), ensure_ascii=False)
    trail.record_by(session, principal, "evals.update", {"eval": row.id})
    return row


def delete_eval(session: Session, principal: Principal, row: Eval) -> None:
    require(principal, "evals.run", row)
    trail.record_by(session, principal, "evals.delete", {"eval": row.id, "name": row.name})
    session.delete(row)


# -- runs: creating one ------------------------------------------------------------------------
def _data_source(session: Session, platform: Platform, principal: Principal, raw: Any) -> dict[str, Any]:
    """The items, their provenance and grade, and the target, from an OpenAI-shaped data source."""
    if not isinstance(raw, dict) or raw.get("type") not in ("completions", "jsonl", "responses"):
        raise InvalidInput("data_source.type은 completions, responses 또는 jsonl입니다.",
                           "data_source.type must be completions, responses or jsonl")
    source = raw.get("source") or {}
    kind = source.get("type") if isinstance(source, dict) else None
    samples: list[dict[str, Any]] | None = None
    grade = Grade.parse(raw.get("data_grade") or "O")
    name = version = None
    if kind == "file_content":
        content = source.get("content")
        if not isinstance(content, list):
            raise InvalidInput("source.content는 {item: …} 목록입니다.", "source.content is a list of {item: …}")
        items = datasets.parse_items(content)
        if raw["type"] == "jsonl":
            samples = [row.get("sample") if isinstance(row, dict) else None for row in content]
            if not all(isinstance(s, dict) for s in samples):
                raise InvalidInput("jsonl 데이터의 각 줄에는 sample이 있어야 합니다(모델을 부르지 않고 채점).",
                                   "each jsonl row needs a sample (scored without calling a model)")
        sha = datasets.digest(items)
    elif kind in ("dataset", "file_id"):  # a stored set: {"type": "dataset", "name": …, "version": n}
        ref = source.get("name") or source.get("id")
        if not isinstance(ref, str):
            raise InvalidInput("source.name에 평가 세트 이름을 주세요.", "name the stored set in source.name")
        ref, _, pinned = ref.partition("@")
        stored = datasets.get(session, principal, ref, int(source.get("version") or pinned or 0) or None)
        items, sha, name, version = datasets.items_of(stored), stored.sha256, stored.name, stored.version
        grade = max(grade, Grade.parse(stored.grade))
    else:
        raise InvalidInput("source.type은 file_content(항목 직접) 또는 dataset(저장된 세트)입니다.",
                           "source.type must be file_content (items inline) or dataset (a stored set)")
    target = None
    if samples is None and raw.get("service") is not None:
        target = targets.parse_service(platform, principal, raw.get("model"), raw.get("service"),
                                       raw.get("service_inputs"))
    elif samples is None:
        target = targets.parse_target(raw.get("model"), raw.get("collections"), raw.get("sampling_params"),
                                      raw.get("input_messages"))
    described = {k: v for k, v in raw.items() if k != "source"}
    described["source"] = {"type": "dataset", "name": name, "version": version} if name else \
        {"type": kind, "items": len(items)}
    return {"items": items, "samples": samples, "sha": sha, "name": name, "version": version, "grade": grade,
            "target": target, "described": described}


def _cleared(platform: Platform, model: str, grade: Grade, role: str) -> str | None:
    """Why `model` may not see data of `grade` (None when it may)."""
    registry = platform.gateway.registry
    if model.startswith("agent:"):
        return None  # the agent's own model is checked by the gateway on every item
    try:
        spec = registry.get(model)
    except ModelNotFound:
        raise InvalidInput(f"{role} 모델 '{model}'이(가) 없습니다.", f"no {role} model '{model}'") from None
    decision = decide_model_access(grade, spec)
    return None if decision.allowed else decision.reason


def create_run(platform: Platform, principal: Principal, eval_id: str, name: Any, data_source: Any,
               metadata: Any = None) -> EvalRun:
    """Check, store and queue a run (its own transactions: a refusal is audited even so)."""
    with platform.db.session() as session:
        row = get_eval(session, principal, eval_id)
        require(principal, "evals.run", row)
        criteria = json.loads(row.testing_criteria)
        found = _data_source(session, platform, principal, data_source)
        for ref in found["target"].collections if found["target"] is not None else ():
            collections.get_readable(session, principal, ref)  # 404 now, not an error on every item
        grade = found["grade"]
        refusals = []
        target_model = found["target"].model if found["target"] is not None else None
        if found["target"] is not None and (why := _cleared(
                platform, target_model or platform.gateway.registry.requested(None), grade, "평가 대상")):
            refusals.append(("target", target_model or platform.gateway.registry.requested(None), why))
        for criterion in criteria:
            if criterion["type"] == "judge" and (why := _cleared(platform, criterion["model"], grade, "채점")):
                refusals.append(("judge", criterion["model"], why))
        if not refusals:
            run = _store_run(session, principal, row, name, found, criteria, metadata)
            return run
    with platform.db.session() as session:  # the refusal is recorded in a transaction of its own
        trail.record_by(session, principal, "evals.run.refuse",
                        {"eval": eval_id, "grade": grade.value, "dataset": found["name"],
                         "refused": [{"role": r, "model": m} for r, m, _ in refusals]})
    role, model, why = refusals[0]
    raise NotAllowed(f"{grade.korean}({grade.value}) 등급 평가 세트는 {'채점' if role == 'judge' else '평가 대상'} "
                     f"모델 '{model}'에 보낼 수 없습니다. {why}",
                     f"a {grade.value} set may not be sent to the {role} model '{model}'")


def _store_run(session: Session, principal: Principal, row: Eval, name: Any, found: dict[str, Any],
               criteria: list[dict[str, Any]], metadata: Any) -> EvalRun:
    items: list[Item] = found["items"]
    target = found["target"]
    snapshot = [{"item": i.as_json(), **({"sample": found["samples"][n]} if found["samples"] else {})}
                for n, i in enumerate(items)]
    config = {"target": target.as_json() if target else None, "criteria": criteria,
              "hanchang_version": __version__, "commit": source_commit()}
    label = name if isinstance(name, str) and name.strip() else \
        f"{(target.service or target.model) if target else 'samples'} · {found['name'] or 'inline'}"
    run = EvalRun(id=new_id("evalrun"), eval_id=row.id, agency_id=principal.agency_id, user_id=principal.user_id,
                  name=label[:200], status="queued", grade=found["grade"].value,
                  data_source=json.dumps(found["described"], ensure_ascii=False),
                  dataset_name=found["name"], dataset_version=found["version"], dataset_sha256=found["sha"],
                  items="[]", config=json.dumps(config, ensure_ascii=False),
                  meta=json.dumps(_meta(metadata), ensure_ascii=False), items_total=len(items), items_done=0,
                  cancel_requested=False)
    run.items = seal_json(session, run.grade, run.agency_id, run_items_where(run), snapshot)
    session.add(run)
    session.flush()
    trail.record_by(session, principal, "evals.run.create",
                    {"eval": row.id, "run": run.id, "model": target.model if target else None,
                     "collections": target.collections if target else [], "dataset": found["name"],
                     "version": found["version"], "sha256": found["sha"], "grade": run.grade,
                     "items": len(items), "judges": [c["model"] for c in criteria if c["type"] == "judge"]})
    return run


def find_run(session: Session, principal: Principal, run_id: str) -> EvalRun:
    run = session.get(EvalRun, run_id)
    if run is None or not can(principal, "evals.read", run):
        raise NotFound(f"평가 실행 '{run_id}'가 없습니다.", f"no run '{run_id}'")
    return run


def get_run(session: Session, principal: Principal, eval_id: str, run_id: str) -> EvalRun:
    """A run of the eval `eval_id` (a run of another eval is not found under it)."""
    run = find_run(session, principal, run_id)
    if run.eval_id != eval_id:
        raise NotFound(f"평가 실행 '{run_id}'가 없습니다.", f"no run '{run_id}' of eval '{eval_id}'")
    return run


def list_runs(session: Session, principal: Principal, eval_id: str | None = None, limit: int = 20,
              status: str | None = None) -> list[EvalRun]:
    query = select(EvalRun).where(EvalRun.agency_id == principal.agency_id)
    if eval_id:
        query = query.where(EvalRun.eval_id == eval_id)
    if status:
        query = query.where(EvalRun.status == status)
    return list(session.scalars(query.order_by(EvalRun.created_at.desc()).limit(limit)))


def cancel_run(session: Session, principal: Principal, run: EvalRun) -> EvalRun:
    require(principal, "evals.run", run)
    if run.status == "queued":
        run.status, run.finished_at = "canceled", utcnow()
    elif run.status == "in_progress":
        run.cancel_requested = True
    trail.record_by(session, principal, "evals.run.cancel", {"run": run.id, "status": run.status})
    return run


def delete_run(session: Session, principal: Principal, run: EvalRun) -> None:
    require(principal, "evals.run", run)
    trail.record_by(session, principal, "evals.run.delete", {"run": run.id})
    session.delete(run)
