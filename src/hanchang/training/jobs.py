"""Fine-tuning jobs in OpenAI's shape: create, list, retrieve, cancel, events, checkpoints.

A job is a row in the database (the durable queue): created `validating_files` then `queued`
in the same transaction as its audit record; a training worker claims it (`runner.py`) and runs
it in its own process (`job_process.py`). A base model can be trained when it is a GGUF the
embedded engine serves. A job's grade, stamped when it is created and never lowered, is the
highest of its training and validation files' grades: what it makes is an asset of that grade.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import HanchangError, InvalidInput, NotFound
from hanchang.core.grades import Grade, highest
from hanchang.core.models import ModelSpec
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.tables import utcnow
from hanchang.store.training_tables import FineTuningCheckpoint, FineTuningEvent, FineTuningJob, TrainingDataset
from hanchang.training import datasets

TERMINAL = ("succeeded", "failed", "cancelled")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier", "lora_rank")
LIMITS = {"n_epochs": (1, 50), "batch_size": (1, 256), "learning_rate_multiplier": (0.01, 10.0), "lora_rank": (1, 256)}
STALE_AFTER = timedelta(seconds=120)  # a running job whose heartbeat is older lost its worker


class NotTrainable(HanchangError):
    status, code = 400, "model_not_trainable"


def trainable_base(spec: ModelSpec) -> Path:
    """The GGUF a model runs from, if Hanchang can fine-tune it."""
    if spec.kind != "chat" or spec.backend != "llamacpp" or not spec.path:
        raise NotTrainable(
            f"'{spec.name}' 모델은 이 플랫폼에서 학습할 수 없습니다. 내장 엔진(llamacpp)이 GGUF로 실행하는 "
            "대화 모델만 파인튜닝할 수 있습니다.",
            f"'{spec.name}' cannot be fine-tuned here: only chat models the embedded engine runs from a GGUF can",
            param="model")
    return Path(spec.path)


def _hyperparameters(asked: dict[str, Any] | None) -> dict[str, Any]:
    asked = dict(asked or {})
    unknown = set(asked) - set(HYPERPARAMETERS)
    if unknown:
        raise InvalidInput(f"알 수 없는 하이퍼파라미터: {', '.join(sorted(unknown))}. 쓸 수 있는 것: "
                           f"{', '.join(HYPERPARAMETERS)}", f"unknown hyperparameters: {', '.join(sorted(unknown))}",
                           param="hyperparameters")
    for name, value in asked.items():
        if value == "auto":
            continue
        low, high = LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high \
                or (name != "learning_rate_multiplier" and int(value) != value):
            raise InvalidInput(f"{name}은(는) 'auto'이거나 {low}~{high} 사이의 값이어야 합니다.",
                               f"{name} must be 'auto' or between {low} and {high}", param=f"hyperparameters.{name}")
    return {name: asked.get(name, "auto") for name in HYPERPARAMETERS}


def create(session: Session, principal: Principal, spec: ModelSpec, training_file: str,
           validation_file: str | None = None, hyperparameters: dict[str, Any] | None = None,
           seed: int | None = None, suffix: str | None = None, metadata: dict[str, Any] | None = None) -> FineTuningJob:
    require(principal, "training.manage")
    trainable_base(spec)
    if suffix is not None and (len(suffix) > 40 or not suffix.replace("-", "").replace("_", "").isalnum()):
        raise InvalidInput("suffix는 영문·숫자·-·_ 40자까지입니다.", "suffix: up to 40 letters, digits, - or _",
                           param="suffix")
    train = datasets.get(session, principal, training_file)
    valid = datasets.get(session, principal, validation_file) if validation_file else None
    if train.train_count < 1:
        raise InvalidInput("학습용 예시가 없습니다.", "the training split is empty", param="training_file")
    grade = highest(Grade.parse(train.grade), *([Grade.parse(valid.grade)] if valid else []))
    if not spec.clears(grade):
        raise InvalidInput(f"'{spec.name}' 모델은 {grade.korean}({grade.value}) 등급 자료로 학습할 수 없습니다.",
                           f"'{spec.name}' is not cleared for grade {grade.value}", param="model")
    job = FineTuningJob(id=f"ftjob-{uuid.uuid4().hex[:24]}", agency_id=principal.agency_id, user_id=principal.user_id,
                        base_model=spec.name, training_dataset_id=train.id,
                        validation_dataset_id=valid.id if valid else None, status="queued", grade=grade.value,
                        hyperparameters=json.dumps(_hyperparameters(hyperparameters)),
                        seed=int(seed if seed is not None else uuid.uuid4().int % 2**31), suffix=suffix,
                        meta=json.dumps(metadata or {}, ensure_ascii=False), progress=0.0, cancel_requested=False,
                        attempts=0)
    session.add(job)
    session.flush()
    event(session, job, "Validated training file: " + train.file_id + (f" and validation file {valid.file_id}"
                                                                       if valid else ""))
    event(session, job, "Fine-tuning job queued")
    trail.record_by(session, principal, "training.job.create",
                    {"job": job.id, "model": spec.name, "training_file": train.file_id, "sha256": train.sha256,
                     "validation_file": valid.file_id if valid else None, "grade": job.grade, "seed": job.seed})
    return job


def get(session: Session, principal: Principal, job_id: str) -> FineTuningJob:
    job = session.get(FineTuningJob, job_id)
    if job is None or job.agency_id != principal.agency_id:
        raise NotFound(f"파인튜닝 작업 '{job_id}'이(가) 없습니다.", f"no fine-tuning job '{job_id}'")
    return job


def list_jobs(session: Session, principal: Principal, after: str | None = None, limit: int = 20) -> list[FineTuningJob]:
    query = select(FineTuningJob).where(FineTuningJob.agency_id == principal.agency_id)
    if after:
        anchor = get(session, principal, after)
        query = query.where((FineTuningJob.created_at < anchor.created_at) |
                            ((FineTuningJob.created_at == anchor.created_at) & (FineTuningJob.id < anchor.id)))
    return list(session.scalars(query.order_by(FineTuningJob.created_at.desc(), FineTuningJob.id.desc())
                                .limit(limit)))


def cancel(session: Session, principal: Principal, job: FineTuningJob) -> FineTuningJob:
    """A queued job is cancelled at once; a running one stops after its current step."""
    require(principal, "training.manage", job)
    if job.status in TERMINAL:
        raise InvalidInput(f"이미 끝난 작업입니다({job.status}).", f"the job already {job.status}")
    job.cancel_requested = True
    if job.status in ("queued", "validating_files"):
        finish(session, job, "cancelled")
    event(session, job, "Cancellation requested")
    trail.record_by(session, principal, "training.job.cancel", {"job": job.id})
    return job


def event(session: Session, job: FineTuningJob, message: str, level: str = "info",
          data: dict[str, Any] | None = None) -> None:
    session.add(FineTuningEvent(job_id=job.id, level=level, type="metrics" if data else "message",
                                message=message, data=json.dumps(data) if data else None))


def finish(session: Session, job: FineTuningJob, status: str, error: dict[str, Any] | None = None) -> None:
    job.status, job.finished_at = status, utcnow()
    if error:
        job.error = json.dumps(error, ensure_ascii=False)
    event(session, job, {"succeeded": "The job has successfully completed", "cancelled": "The job was cancelled",
                         "failed": "The job failed"}[status] + (f": {error['message']}" if error else ""),
          level="error" if status == "failed" else "info")


def events(session: Session, job: FineTuningJob, after: str | None = None, limit: int = 20) -> list[FineTuningEvent]:
    query = select(FineTuningEvent).where(FineTuningEvent.job_id == job.id)
    if after:
        query = query.where(FineTuningEvent.id < int(after.removeprefix("ftevent-")))
    return list(session.scalars(query.order_by(FineTuningEvent.id.desc()).limit(limit)))


def checkpoints(session: Session, job: FineTuningJob, limit: int = 10) -> list[FineTuningCheckpoint]:
    return list(session.scalars(select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_id == job.id)
                                .order_by(FineTuningCheckpoint.step.desc()).limit(limit)))


def _claimable(now):
    return (FineTuningJob.status == "queued") | (
        (FineTuningJob.status == "running") & (FineTuningJob.heartbeat_at < now - STALE_AFTER))


def waiting(session: Session) -> bool:
    return session.scalar(select(FineTuningJob.id).where(_claimable(utcnow())).limit(1)) is not None


def claim(session: Session, worker: str) -> FineTuningJob | None:
    """The oldest queued job, or a running one whose worker stopped (no heartbeat), taken for
    `worker`; the conditional update makes two workers never take the same job."""
    now = utcnow()
    candidates = session.scalars(select(FineTuningJob).where(_claimable(now))
                                 .order_by(FineTuningJob.created_at).limit(5)).all()
    for job in candidates:
        same = FineTuningJob.status == "queued" if job.status == "queued" else \
            FineTuningJob.heartbeat_at == job.heartbeat_at
        taken = session.execute(
            update(FineTuningJob).where(FineTuningJob.id == job.id, FineTuningJob.status == job.status, same)
            .values(status="running", worker=worker[:255], heartbeat_at=now, attempts=FineTuningJob.attempts + 1,
                    started_at=job.started_at or now)).rowcount
        if taken:
            session.refresh(job)
            event(session, job, "Fine-tuning job started" if job.attempts == 1 else
                  f"Fine-tuning job resumed after its worker stopped (attempt {job.attempts})")
            return job
    return None


def _timestamp(value) -> int | None:
    return int(value.timestamp()) if value else None


def describe(session: Session, job: FineTuningJob) -> dict[str, Any]:
    """OpenAI's fine_tuning.job object (and `hanchang` with what Hanchang adds)."""
    train = session.get(TrainingDataset, job.training_dataset_id)
    valid = session.get(TrainingDataset, job.validation_dataset_id) if job.validation_dataset_id else None
    asked = json.loads(job.hyperparameters)
    manifest = json.loads(job.manifest) if job.manifest else None
    resolved = (manifest or {}).get("hyperparameters") or {}
    hyper = {name: resolved.get(name, asked.get(name, "auto")) for name in HYPERPARAMETERS}
    return {"object": "fine_tuning.job", "id": job.id, "model": job.base_model,
            "created_at": _timestamp(job.created_at), "finished_at": _timestamp(job.finished_at),
            "fine_tuned_model": job.fine_tuned_model, "organization_id": f"agency-{job.agency_id}",
            "result_files": [], "status": job.status, "validation_file": valid.file_id if valid else None,
            "training_file": train.file_id, "hyperparameters": hyper, "trained_tokens": job.trained_tokens,
            "error": json.loads(job.error) if job.error else None, "seed": job.seed, "suffix": job.suffix,
            "estimated_finish": None, "integrations": [], "metadata": json.loads(job.meta or "{}") or None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "hanchang": {"grade": job.grade, "progress": round(job.progress, 4), "attempts": job.attempts,
                         "manifest": manifest}}


def describe_event(row: FineTuningEvent) -> dict[str, Any]:
    return {"object": "fine_tuning.job.event", "id": f"ftevent-{row.id}", "created_at": _timestamp(row.created_at),
            "level": row.level, "message": row.message, "type": row.type,
            "data": json.loads(row.data) if row.data else {}}


def describe_checkpoint(row: FineTuningCheckpoint, job: FineTuningJob) -> dict[str, Any]:
    return {"object": "fine_tuning.job.checkpoint", "id": row.id, "created_at": _timestamp(row.created_at),
            "fine_tuned_model_checkpoint": f"{job.fine_tuned_model or job.base_model}:ckpt-step-{row.step}",
            "fine_tuning_job_id": job.id, "step_number": row.step, "metrics": json.loads(row.metrics)}
