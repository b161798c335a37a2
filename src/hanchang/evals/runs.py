"""Evals and their runs, in OpenAI's Evals API shapes, stored and run in the background.

An eval names its testing criteria; a run names a data source (a stored set and version, or
items inline as OpenAI's `file_content`, or samples already written: `jsonl`) and a target.
Before anything is sent, the run's grade (the set's) must be cleared by the target model and by
every judge model: a run over an S set with a judge outside S's zone is refused (403) and the
refusal audited. A run is queued, then taken by the runner of a server (or by `hanchang eval
run` in its own process): item by item, each output item written with the run's progress in
one transaction, so a run stopped anywhere resumes at the first item not done. Every run keeps
the set's name, version and hash, its config, Hanchang's version and the git commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import statistics
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hanchang import __version__
from hanchang.assist.platform import Platform
from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotAllowed, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import can, require
from hanchang.core.policy import decide_model_access
from hanchang.core.principal import Principal, Role
from hanchang.evals import datasets, scorers, targets
from hanchang.evals.datasets import Item
from hanchang.gateway.errors import ModelNotFound
from hanchang.knowledge import collections
from hanchang.store.db import Database
from hanchang.store.tables import Agency, Eval, EvalOutputItem, EvalRun, User, utcnow

log = logging.getLogger(__name__)
FINAL = ("completed", "failed", "canceled")
STALE_S = 120.0  # an in-progress run whose heartbeat is older was stopped with its process: resumed
POLL_S = 2.0


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


def _ts(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


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
    return {"object": "eval", "id": row.id, "name": row.name, "created_at": _ts(row.created_at),
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
                  items=json.dumps(snapshot, ensure_ascii=False), config=json.dumps(config, ensure_ascii=False),
                  meta=json.dumps(_meta(metadata), ensure_ascii=False), items_total=len(items), items_done=0,
                  cancel_requested=False)
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


# -- runs: what they found ----------------------------------------------------------------------
def output_items(session: Session, run: EvalRun, status: str | None = None,
                 limit: int | None = None, after: str | None = None) -> list[EvalOutputItem]:
    query = select(EvalOutputItem).where(EvalOutputItem.run_id == run.id)
    if status:
        query = query.where(EvalOutputItem.status == status)
    rows = list(session.scalars(query.order_by(EvalOutputItem.position)))
    if after:
        ids = [r.id for r in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else []
    return rows[:limit] if limit else rows


def describe_item(run: EvalRun, row: EvalOutputItem) -> dict[str, Any]:
    sample = json.loads(row.sample)
    item = json.loads(run.items)[row.position]["item"]
    usage = sample.get("usage") or {}
    return {"object": "eval.run.output_item", "id": row.id, "run_id": run.id, "eval_id": run.eval_id,
            "created_at": _ts(row.created_at), "status": row.status, "datasource_item_id": row.position,
            "datasource_item": item, "results": [{**r, "sample": None} for r in json.loads(row.results)],
            "sample": {"input": sample.get("input") or [],
                       "output": [{"role": "assistant", "content": sample.get("output_text") or ""}],
                       "finish_reason": sample.get("finish_reason") or "", "model": sample.get("model") or "",
                       "usage": {"prompt_tokens": usage.get("prompt_tokens", 0),
                                 "completion_tokens": usage.get("completion_tokens", 0),
                                 "total_tokens": usage.get("total_tokens", 0), "cached_tokens": 0},
                       "error": sample.get("error") or {"code": "", "message": ""},
                       "temperature": (sample.get("sampling") or {}).get("temperature", 0),
                       "max_completion_tokens": 0, "top_p": 1, "seed": 0,
                       "citations": sample.get("citations") or [], "answer_check": sample.get("answer_check"),
                       "latency_s": sample.get("latency_s")}}


def summarise(session: Session, run: EvalRun) -> dict[str, Any]:
    rows = output_items(session, run)
    counts = {"total": len(rows), "passed": 0, "failed": 0, "errored": 0}
    per: dict[str, dict[str, Any]] = {}
    usage: dict[str, dict[str, int]] = {}
    latency = []
    for row in rows:
        counts[{"pass": "passed", "fail": "failed"}.get(row.status, "errored")] += 1
        sample = json.loads(row.sample)
        if sample.get("latency_s") is not None and not sample.get("error"):
            latency.append(float(sample["latency_s"]))
        model = sample.get("model") or ""
        used = usage.setdefault(model, {"invocation_count": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "total_tokens": 0, "cached_tokens": 0})
        used["invocation_count"] += 1
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            used[key] += int((sample.get("usage") or {}).get(key) or 0)
        for result in json.loads(row.results):
            entry = per.setdefault(result["name"], {"testing_criteria": result["name"], "passed": 0, "failed": 0,
                                                    "scores": []})
            if result["passed"] is True:
                entry["passed"] += 1
            elif result["passed"] is False:
                entry["failed"] += 1
            if result["score"] is not None:
                entry["scores"].append(result["score"])
    criteria = []
    for entry in per.values():
        scores = entry.pop("scores")
        judged = entry["passed"] + entry["failed"]
        criteria.append({**entry, "pass_rate": round(entry["passed"] / judged, 4) if judged else None,
                         "mean_score": round(statistics.fmean(scores), 4) if scores else None})
    ordered = sorted(latency)

    def pct(share: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.999) - 1))], 2) \
            if ordered else None
    return {"result_counts": counts, "per_testing_criteria_results": criteria,
            "per_model_usage": [{"model_name": m, **u} for m, u in usage.items()],
            "latency_s": {"p50": pct(0.5), "p90": pct(0.9), "mean": round(statistics.fmean(latency), 2)
                          if latency else None}}


def describe_run(session: Session, run: EvalRun) -> dict[str, Any]:
    summary = json.loads(run.summary) if run.summary else summarise(session, run)
    config = json.loads(run.config)
    target = config.get("target") or {}
    return {"object": "eval.run", "id": run.id, "eval_id": run.eval_id, "name": run.name, "status": run.status,
            "model": target.get("model") or "", "created_at": _ts(run.created_at),
            "data_source": json.loads(run.data_source), "metadata": json.loads(run.meta or "{}"),
            "error": {"code": "run_failed", "message": run.error} if run.error else None,
            "report_url": f"/evals#{run.id}",
            "result_counts": summary["result_counts"],
            "per_model_usage": summary["per_model_usage"],
            "per_testing_criteria_results": [{"testing_criteria": c["testing_criteria"], "passed": c["passed"],
                                              "failed": c["failed"]} for c in summary["per_testing_criteria_results"]],
            "hanchang": {"progress": {"done": run.items_done, "total": run.items_total},
                         "grade": run.grade, "dataset": {"name": run.dataset_name, "version": run.dataset_version,
                                                         "sha256": run.dataset_sha256},
                         "scores": summary["per_testing_criteria_results"], "latency_s": summary["latency_s"],
                         "config": config, "started_at": _ts(run.started_at), "finished_at": _ts(run.finished_at)}}


# -- runs: running one -------------------------------------------------------------------------
def _principal_of(session: Session, run: EvalRun) -> Principal:
    user = session.get(User, run.user_id)
    if user.disabled:
        raise NotAllowed("이 평가를 실행한 사용자 계정이 비활성화되었습니다.", "the run's user has been disabled")
    agency = session.get(Agency, user.agency_id)
    return Principal(user.id, user.name, agency.id, agency.code, Role(user.role), None)


def _item_status(sample: dict[str, Any], results: list[scorers.Result]) -> str:
    if sample.get("error") and not any(r.type == "refusal" and r.passed for r in results):
        return "error"
    return "fail" if any(r.passed is False for r in results) else "pass"


class RunCanceled(Exception):
    pass


async def execute(platform: Platform, run_id: str, progress=None) -> None:
    """Run a claimed run from its first item not done to the end (or a cancellation)."""
    db = platform.db

    def load():
        with db.session() as session:
            run = session.get(EvalRun, run_id)
            return (_principal_of(session, run), json.loads(run.items), json.loads(run.config), run.items_done,
                    Grade.parse(run.grade))
    try:
        principal, snapshot, config, done, grade = await run_in_threadpool(load)
    except Exception as exc:  # its user disabled, its record unreadable: the run fails, the runner goes on
        log.warning("eval run %s cannot start", run_id, exc_info=True)
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {str(exc)[:300]}"

        def fail() -> None:
            with db.session() as session:
                run = session.get(EvalRun, run_id)
                run.status, run.finished_at, run.error = "failed", utcnow(), reason
        await run_in_threadpool(fail)
        return
    target = targets.Target.from_json(config["target"]) if config.get("target") else None
    criteria = config["criteria"]
    judges = {c["model"]: functools.partial(targets.ask_judge, platform, principal, c["model"], grade)
              for c in criteria if c["type"] == "judge"}
    try:
        for position in range(done, len(snapshot)):
            item = datasets.parse_item(snapshot[position]["item"], position + 1)
            if target is None:
                sample = snapshot[position]["sample"]
                sample = {"output_text": sample.get("output_text") or "", **sample}
            else:
                sample = await targets.answer_item(platform, principal, target, item, grade)
            results = await scorers.score(item, sample, criteria, judges)
            await run_in_threadpool(_write_item, db, run_id, position, item, sample, results)
            if progress is not None:
                progress(position + 1, len(snapshot), item, sample, results)
        await run_in_threadpool(_finish, db, run_id, principal, "completed", None)
    except RunCanceled:
        await run_in_threadpool(_finish, db, run_id, principal, "canceled", None)
    except Exception as exc:
        log.exception("eval run %s failed", run_id)
        await run_in_threadpool(_finish, db, run_id, principal, "failed", f"{type(exc).__name__}: {str(exc)[:300]}")


def _write_item(db: Database, run_id: str, position: int, item: Item, sample: dict[str, Any],
                results: list[scorers.Result]) -> None:
    with db.session() as session:  # the output item and the run's progress: together
        run = session.get(EvalRun, run_id)
        if run.cancel_requested:
            raise RunCanceled()
        session.add(EvalOutputItem(id=new_id("outputitem"), run_id=run_id, position=position, item_id=item.id,
                                   status=_item_status(sample, results),
                                   sample=json.dumps(sample, ensure_ascii=False),
                                   results=json.dumps([r.as_json() for r in results], ensure_ascii=False)))
        run.items_done = position + 1
        run.heartbeat_at = utcnow()


def _finish(db: Database, run_id: str, principal: Principal, status: str, error: str | None) -> None:
    with db.session() as session:
        run = session.get(EvalRun, run_id)
        summary = summarise(session, run)
        run.status, run.error, run.finished_at = status, error, utcnow()
        run.summary = json.dumps(summary, ensure_ascii=False)
        trail.record_by(session, principal, f"evals.run.{status}",
                        {"run": run_id, "eval": run.eval_id, "result_counts": summary["result_counts"]})


def claim(db: Database, run_id: str | None = None) -> str | None:
    """Take a queued run (the oldest, or `run_id`): only one process ever runs it."""
    with db.session() as session:
        limit = utcnow() - timedelta(seconds=STALE_S)
        session.execute(update(EvalRun).where(EvalRun.status == "in_progress", EvalRun.heartbeat_at < limit)
                        .values(status="queued"))
        query = select(EvalRun.id).where(EvalRun.status == "queued")
        if run_id:
            query = query.where(EvalRun.id == run_id)
        found = session.scalar(query.order_by(EvalRun.created_at).limit(1))
        if found is None:
            return None
        taken = session.execute(update(EvalRun).where(EvalRun.id == found, EvalRun.status == "queued")
                                .values(status="in_progress", started_at=utcnow(), heartbeat_at=utcnow()))
        return found if taken.rowcount == 1 else None


class EvalRunner:
    """Runs queued evaluation runs, one at a time, as a task of the server's event loop."""

    def __init__(self, platform: Platform):
        self.platform = platform
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._current: str | None = None

    def start(self) -> EvalRunner:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="eval-runs")
        return self

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                run_id = await run_in_threadpool(claim, self.platform.db)
            except Exception:
                log.warning("eval runs: cannot read the queue", exc_info=True)
                run_id = None
            if run_id is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                self._wake.clear()
                continue
            self._current = run_id
            try:
                await execute(self.platform, run_id)
            except Exception:  # the database away while finishing: the run is resumed when it is stale
                log.exception("eval run %s stopped", run_id)
            self._current = None

    async def stop(self) -> None:
        """Stop; a run in hand goes back to the queue, to resume from its next item."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._current is not None:
            def requeue() -> None:
                with self.platform.db.session() as session:
                    session.execute(update(EvalRun).where(EvalRun.id == self._current,
                                                          EvalRun.status == "in_progress").values(status="queued"))
            await run_in_threadpool(requeue)
