"""The models fine-tuning makes: in the registry as their owner's, gated, promoted, rolled back.

A trained model is a LoRA adapter on a configured base. It enters the registry (for its owner
agency only) as soon as its job succeeds, in state `awaiting_eval`: only the eval gate's runs may
call it. The gate scores it and its base with the harness on the dataset's held-out split and on
the regression sets (general Korean questions, refusals), compares them pairwise, and promotes it
(`served`) only when it is better on the held-out split and loses no more than a margin on the
regression sets; otherwise it is `rejected`. `rollback` stops serving it (`retired`) at once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.models import ModelSpec
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.db import Database
from hanchang.store.tables import utcnow
from hanchang.store.training_tables import FineTuningJob, TrainedModel, TrainingDataset
from hanchang.training import datasets, gguf_files

REGISTERED = ("awaiting_eval", "served")
HELDOUT_CRITERION = "f1"


def specs(db: Database, configured: list[ModelSpec], home: Path,
          serve_on: dict[str, str] | None = None) -> list[ModelSpec]:
    """Trained models the registry serves, each on its configured base (or the model `serve_on`
    names for that base): named for its owner only, graded no lower than what it was trained on,
    and never on a model that does not clear that."""
    by_name = {s.name: s for s in configured}
    with db.reading() as session:  # asked from inside other transactions (a run checks its model)
        rows = session.scalars(select(TrainedModel).where(TrainedModel.status.in_(REGISTERED))).all()
        session.expunge_all()  # plain values from here on: the read-only session rolls back
    found = []
    for row in rows:
        base = by_name.get((serve_on or {}).get(row.base_model, row.base_model))
        if base is None or not base.clears(Grade.parse(row.grade)):
            continue
        upstream = base.backend != "llamacpp"
        if upstream and not base.extra.get("lora_root"):
            continue  # a server that cannot read the adapters cannot serve them
        found.append(ModelSpec(
            name=row.id, backend=base.backend, zone=base.zone, max_grade=base.max_grade,
            context_window=base.context_window, base_url=base.base_url, path=base.path, kind="chat",
            timeout_s=base.timeout_s, max_retries=base.max_retries, api_key_env=base.api_key_env,
            upstream_model=row.id if upstream else None,
            extra={**base.extra, "adapter_of": base.name, "adapter_path": str(home / row.adapter_path),
                   "lora_scale": row.lora_scale, "owner_agency_id": row.agency_id, "grade_floor": row.grade,
                   "status": row.status, "lora_name": row.id,
                   **({"lora_path": f"{base.extra['lora_root'].rstrip('/')}/"
                                    f"{gguf_files.peft_folder(Path(row.adapter_path)).name}"}
                      if upstream else {})}))
    return found


def get(session: Session, principal: Principal, model_id: str) -> TrainedModel:
    row = session.get(TrainedModel, model_id)
    if row is None or row.agency_id != principal.agency_id:
        raise NotFound(f"학습된 모델 '{model_id}'이(가) 없습니다.", f"no fine-tuned model '{model_id}'")
    return row


def list_models(session: Session, principal: Principal) -> list[TrainedModel]:
    return list(session.scalars(select(TrainedModel).where(TrainedModel.agency_id == principal.agency_id)
                                .order_by(TrainedModel.created_at.desc())))


def describe(row: TrainedModel) -> dict[str, Any]:
    return {"id": row.id, "object": "model", "owned_by": f"agency-{row.agency_id}", "base_model": row.base_model,
            "created": int(row.created_at.timestamp()) if row.created_at else None, "status": row.status,
            "grade": row.grade, "job": row.job_id, "adapter_sha256": row.adapter_sha256,
            "gate": json.loads(row.gate) if row.gate else None,
            "promoted_at": int(row.promoted_at.timestamp()) if row.promoted_at else None}


def _set_status(session: Session, principal: Principal, row: TrainedModel, status: str, action: str,
                detail: dict[str, Any] | None = None) -> None:
    require(principal, "training.manage", row)
    before, row.status = row.status, status
    if status == "served":
        row.promoted_at = utcnow()
    trail.record_by(session, principal, action, {"model": row.id, "from": before, "to": status, "grade": row.grade,
                                                 **(detail or {})})


def rollback(session: Session, principal: Principal, row: TrainedModel) -> TrainedModel:
    """Stop serving a promoted model: calls naming it get 'not found' from the next moment."""
    if row.status != "served":
        raise InvalidInput(f"'{row.id}'은(는) 서비스 중이 아닙니다({row.status}).", f"'{row.id}' is not served")
    _set_status(session, principal, row, "retired", "training.model.rollback")
    return row


def promote_by_hand(session: Session, principal: Principal, row: TrainedModel, reason: str) -> TrainedModel:
    """A platform decision against the gate's verdict, with its reason in the audit trail."""
    if row.status not in ("rejected", "retired", "awaiting_eval"):
        raise InvalidInput(f"'{row.id}'은(는) 이미 서비스 중입니다.", f"'{row.id}' is already served")
    if not reason.strip():
        raise InvalidInput("게이트를 건너뛰는 이유를 적으세요.", "say why the gate is overridden")
    _set_status(session, principal, row, "served", "training.model.promote_override", {"reason": reason[:500]})
    return row


# -- the gate ---------------------------------------------------------------------------------
def heldout_items(session: Session, row: TrainedModel) -> tuple[list[dict[str, Any]], str]:
    """The held-out split of the dataset the model was trained on, as evaluation items."""
    job = session.get(FineTuningJob, row.job_id)
    dataset = session.get(TrainingDataset, job.training_dataset_id)
    parts = datasets.examples_of(session, dataset)
    items = []
    for position, example in enumerate(parts.holdout, 1):
        messages = example["messages"]
        question = next(m["content"] for m in reversed(messages[:-1]) if m["role"] == "user")
        answer = messages[-1]["content"]  # character F1 is taken against the facts' alternatives
        items.append({"id": f"holdout-{position}", "question": question, "reference": answer, "facts": [[answer]]})
    if not items:
        raise InvalidInput("이 모델의 데이터셋에 held-out 예시가 없어 평가할 수 없습니다.",
                           "the model's dataset has no held-out examples to gate on")
    return items, dataset.grade


async def _scored(platform, principal: Principal, name: str, model: str, items: list[dict[str, Any]] | None,
                  shipped: str | None, criterion: str, grade: str, max_tokens: int):
    """One harness run (like `hanchang eval run`), in this process; its id."""
    from hanchang.evals import runner, runs

    source = {"type": "dataset", "name": shipped} if shipped else \
        {"type": "file_content", "content": [{"item": i} for i in items]}
    with platform.db.session() as session:
        created = runs.create_eval(session, principal, name, None, [{"type": criterion, "name": criterion}])
        eval_id = created.id
    data_source = {"type": "completions", "model": model, "source": source, "data_grade": grade,
                   "sampling_params": {"temperature": 0, "max_completion_tokens": max_tokens}}
    run = await asyncio.to_thread(runs.create_run, platform, principal, eval_id, f"{name} · {model}", data_source)
    if runner.claim(platform.db, run.id) is None:
        raise RuntimeError(f"run {run.id} was taken by another process")
    await runner.execute(platform, run.id)
    return run.id


async def gate(platform, principal: Principal, model_id: str, *, limit: int | None = None) -> dict[str, Any]:
    """Score the model and its base; promote it or reject it; the verdict, with its runs."""
    from hanchang.evals import compare
    from hanchang.store.tables import EvalRun

    with platform.db.session() as session:
        row = get(session, principal, model_id)
        require(principal, "training.manage", row)
        if row.status != "awaiting_eval":
            raise InvalidInput(f"'{row.id}'은(는) 평가 대기 상태가 아닙니다({row.status}).",
                               f"'{row.id}' is not awaiting evaluation")
        items, grade = heldout_items(session, row)
        base = row.base_model
    items = items[:limit] if limit else items
    config = platform.settings.training
    margin, max_tokens = config.gate_margin, config.gate_max_tokens
    sets = [("held-out", items, None, HELDOUT_CRITERION, grade)]
    sets += [(name, None, name, criterion, "O") for name, criterion in config.gate_regression.items()]
    verdicts, runs_made = [], {}
    for label, set_items, shipped, criterion, set_grade in sets:
        base_run = await _scored(platform, principal, f"gate {model_id} {label}", base, set_items, shipped,
                                 criterion, set_grade, max_tokens)
        model_run = await _scored(platform, principal, f"gate {model_id} {label}", model_id, set_items, shipped,
                                  criterion, set_grade, max_tokens)
        with platform.db.session() as session:
            comparison = compare.compare(session, session.get(EvalRun, base_run), session.get(EvalRun, model_run))
        if label == "held-out":
            verdict = compare.gate(comparison, criterion)
            if verdict["promote"]:  # better, not only as good: a model that changes nothing is not served
                rates = next(r for r in comparison["criteria"] if r["criterion"] == criterion)["pass_rate"]
                if (rates["other"] or 0) <= (rates["base"] or 0):
                    verdict = {**verdict, "promote": False,
                               "reasons": [f"{criterion}: {rates['other']} is not above the base's {rates['base']}"]}
        else:
            verdict = compare.gate(comparison, criterion, guarded=[criterion], margin=margin)
            if not verdict["promote"]:  # on a regression set only a fall beyond the margin counts
                rows = {r["criterion"]: r for r in comparison["criteria"]}
                rates = rows[criterion]["pass_rate"] if criterion in rows else {"base": None, "other": None}
                fell = rates["base"] is None or rates["other"] is None or rates["other"] < rates["base"] - margin
                verdict = {**verdict, "promote": not fell, "reasons": verdict["reasons"] if fell else []}
        verdicts.append({"set": label, "criterion": criterion, "base_run": base_run, "model_run": model_run,
                         **verdict})
        runs_made[label] = {"base": base_run, "model": model_run}
    promote = all(v["promote"] for v in verdicts)
    result = {"promote": promote, "margin": margin, "sets": verdicts}
    with platform.db.session() as session:
        row = get(session, principal, model_id)
        row.gate = json.dumps(result, ensure_ascii=False)
        _set_status(session, principal, row, "served" if promote else "rejected", "training.model.gate",
                    {"promote": promote, "runs": runs_made})
    platform.gateway.registry.refresh(force=True)
    return result
