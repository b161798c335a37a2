"""The process one fine-tuning job runs in: `python -m hanchang.training.job_process JOB_ID`.

Started by a training worker (`runner.py`) for a job it claimed; never the API process, so a
crash, an out-of-memory kill or a full disk here ends this job only. It reads the job's dataset
with the agency's key, trains (`trainer.py`), reports loss and checkpoints as it goes, and at the
end writes the adapter as GGUF, its manifest and a model `awaiting_eval` — with the job's final
state and audit record in one transaction.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import shutil
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hanchang.audit import trail
from hanchang.core.errors import HanchangError
from hanchang.gateway import local_model
from hanchang.store.db import Database
from hanchang.store.tables import Agency, utcnow
from hanchang.store.training_tables import FineTuningCheckpoint, FineTuningJob, TrainedModel, TrainingDataset
from hanchang.training import datasets, gguf_files, jobs, trainer

log = logging.getLogger("hanchang.training")
HEARTBEAT_S = 15.0
TOLERANCE = 1e-3  # a rerun's train_loss per step, same device type, may differ by this much


def work_dir(home: Path, job_id: str) -> Path:
    return home / "training" / job_id


def adapter_path(home: Path, model_id: str) -> Path:
    return home / "models" / "adapters" / (model_id.replace(":", "_") + ".gguf")


def model_id_for(session, job: FineTuningJob, agency_code: str) -> str:
    stem = f"local:ft-{agency_code.lower()}-" + (f"{job.suffix}-" if job.suffix else "") + \
        datetime.now(UTC).strftime("%Y%m%d")
    taken = session.scalar(select(func.count()).select_from(TrainedModel).where(TrainedModel.id.like(stem + "-%")))
    return f"{stem}-{taken + 1}"


class JobRun:
    def __init__(self, db: Database, home: Path, job_id: str, threads: int | None = None):
        self.db, self.home, self.job_id, self.threads = db, home, job_id, threads
        self._stop_beating = threading.Event()
        self._cancel_seen = 0.0
        self._cancelled = False

    # -- progress, written in short transactions -------------------------------------------------
    def _update(self, change) -> None:
        with self.db.session() as session:
            job = session.get(FineTuningJob, self.job_id)
            job.heartbeat_at = utcnow()
            change(session, job)

    def _beat(self) -> None:
        while not self._stop_beating.wait(HEARTBEAT_S):
            try:
                self._update(lambda session, job: None)
            except Exception:  # the database away for a moment: the next beat tries again
                log.warning("heartbeat of %s failed", self.job_id, exc_info=True)

    def report(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "metrics":
            shown = ", ".join(f"{k}={v:.4f}" for k, v in data.items() if k not in ("step", "epoch", "learning_rate"))
            self._update(lambda s, job: jobs.event(s, job, f"Step {data['step']}: {shown}", data=data))
        elif kind == "progress" and data.get("total_steps"):
            self._update(lambda s, job: setattr(job, "progress", min(1.0, data["step"] / data["total_steps"])))
        elif kind == "checkpoint":
            def save(session, job):
                session.add(FineTuningCheckpoint(id=f"ftckpt-{uuid.uuid4().hex[:24]}", job_id=job.id,
                                                 step=data["step"], metrics=json.dumps(data["metrics"]),
                                                 path=str(Path(data["path"]).relative_to(self.home))))
                jobs.event(session, job, f"Checkpoint saved at step {data['step']}")
            self._update(save)

    def cancelled(self) -> bool:
        if not self._cancelled and time.monotonic() - self._cancel_seen > 1.0:
            self._cancel_seen = time.monotonic()
            with self.db.session() as session:
                self._cancelled = bool(session.scalar(select(FineTuningJob.cancel_requested)
                                                      .where(FineTuningJob.id == self.job_id)))
        return self._cancelled

    # -- the run ---------------------------------------------------------------------------------
    def _plan(self):
        settings = settings_of_worker()
        with self.db.session() as session:
            job = session.get(FineTuningJob, self.job_id)
            spec = next((s for s in settings.model_specs() if s.name == job.base_model), None)
            if spec is None:
                raise jobs.NotTrainable(f"기반 모델 '{job.base_model}'이(가) 더 이상 설정에 없습니다.",
                                        f"base model '{job.base_model}' is no longer configured")
            base = jobs.trainable_base(spec)
            if not base.exists() and base.name == local_model.FILENAME:  # the engine has not run yet
                local_model.assemble(base)
            train_set = session.get(TrainingDataset, job.training_dataset_id)
            parts = datasets.examples_of(session, train_set)
            if job.validation_dataset_id:
                valid_set = session.get(TrainingDataset, job.validation_dataset_id)
                valid_parts = datasets.examples_of(session, valid_set)
                valid = valid_parts.train + valid_parts.holdout
            else:
                valid_set, valid = None, parts.holdout  # reported as valid_loss; never trained on
            hyper = trainer.resolve(json.loads(job.hyperparameters), len(parts.train))
            plan = trainer.Plan(base, parts.train, valid, hyper, job.seed, work_dir(self.home, job.id),
                                threads=self.threads)
            manifest = {"job": job.id, "base_model": job.base_model, "base_gguf_sha256": None,
                        "training_file": {"id": train_set.file_id, "name": train_set.name,
                                          "version": train_set.version, "sha256": train_set.sha256},
                        "validation_file": ({"id": valid_set.file_id, "sha256": valid_set.sha256}
                                            if valid_set else None),
                        "seed": job.seed, "hyperparameters": {
                            "n_epochs": hyper.n_epochs, "batch_size": hyper.batch_size,
                            "learning_rate_multiplier": hyper.learning_rate_multiplier,
                            "lora_rank": hyper.lora_rank},
                        "lora": {"alpha": hyper.lora_alpha, "target_modules": trainer.TARGET_MODULES,
                                 "learning_rate": hyper.learning_rate},
                        "reproduces": json.loads(job.meta or "{}").get("reproduces")}
            agency_code = session.get(Agency, job.agency_id).code
        return plan, manifest, agency_code

    def run(self) -> int:
        beat = threading.Thread(target=self._beat, name="training-heartbeat", daemon=True)
        beat.start()
        try:
            plan, manifest, agency_code = self._plan()
            manifest["base_gguf_sha256"] = gguf_files.sha256_of(plan.base_gguf)
            manifest["libraries"] = trainer.library_versions()
            manifest["device"] = trainer.device()
            self._update(lambda s, job: jobs.event(s, job, f"Training on {manifest['device']}: "
                                                   f"{len(plan.train)} examples, {plan.hyper.n_epochs} epochs"))
            started = time.monotonic()
            outcome = trainer.run(plan, self.report, self.cancelled)
            manifest["seconds"] = round(time.monotonic() - started, 1)
            manifest["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            if outcome.cancelled:
                self._update(lambda s, job: jobs.finish(s, job, "cancelled"))
                return 0
            self._succeed(plan, manifest, outcome, agency_code)
            return 0
        except Exception as exc:  # the job fails with its reason; the platform goes on serving
            self._fail(exc)
            return 1
        finally:
            self._stop_beating.set()

    def _succeed(self, plan, manifest: dict[str, Any], outcome, agency_code: str) -> None:
        arch, blocks = gguf_files.architecture(plan.base_gguf)
        with self.db.session() as session:
            job = session.get(FineTuningJob, self.job_id)
            model_id = model_id_for(session, job, agency_code)
        path = adapter_path(self.home, model_id)
        digest = gguf_files.write_lora(outcome.state, plan.hyper.lora_alpha, arch, blocks, path)
        peft_dir = gguf_files.peft_folder(path)
        shutil.rmtree(peft_dir, ignore_errors=True)
        shutil.copytree(plan.out_dir / "adapter", peft_dir)
        manifest |= {"adapter": {"model": model_id, "path": str(path.relative_to(self.home)), "sha256": digest,
                                 "format": "gguf-lora", "architecture": arch},
                     "steps": outcome.steps, "trained_tokens": outcome.trained_tokens, "curve": outcome.curve,
                     "train_seconds": round(outcome.train_seconds, 1),
                     "tolerance": {"train_loss_abs_per_step": TOLERANCE, "same_device_type": True}}

        def done(session, job):
            if manifest.get("reproduces"):
                manifest["reproduction"] = reproduction(session, manifest)
            job.manifest = json.dumps(manifest, ensure_ascii=False)
            job.fine_tuned_model, job.trained_tokens, job.progress = model_id, outcome.trained_tokens, 1.0
            session.add(TrainedModel(id=model_id, agency_id=job.agency_id, job_id=job.id, base_model=job.base_model,
                                     grade=job.grade, status="awaiting_eval",
                                     adapter_path=str(path.relative_to(self.home)), adapter_sha256=digest,
                                     lora_scale=1.0))
            jobs.event(session, job, f"New fine-tuned model created: {model_id} (awaiting evaluation)")
            jobs.finish(session, job, "succeeded")
            trail.append(session, [trail.admin_entry("training.job.succeeded", f"training:{job.id}", agency_code,
                                                     {"job": job.id, "model": model_id, "grade": job.grade,
                                                      "adapter_sha256": digest, "steps": outcome.steps})])
        self._update(done)

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            error = {"code": "disk_full", "param": None,
                     "message": "디스크가 가득 차 학습을 마치지 못했습니다. 공간을 확보한 뒤 다시 만드세요. "
                                "(disk full)"}
        elif isinstance(exc, HanchangError):
            error = {"code": exc.code, "param": exc.param, "message": exc.message}
        else:
            error = {"code": "training_failed", "param": None,
                     "message": f"학습 중 오류가 났습니다: {type(exc).__name__}: {str(exc)[:300]}"}
        log.error("fine-tuning job %s failed: %s", self.job_id, error["message"], exc_info=exc)
        try:
            def failed(session, job):
                jobs.finish(session, job, "failed", error)
                trail.append(session, [trail.admin_entry("training.job.failed", f"training:{job.id}",
                                                         session.get(Agency, job.agency_id).code,
                                                         {"job": job.id, "code": error["code"]})])
            self._update(failed)
        except Exception:
            log.exception("could not record the failure of %s", self.job_id)


def reproduction(session, manifest: dict[str, Any]) -> dict[str, Any]:
    """How close this run's loss curve came to the run it reproduces."""
    original = session.get(FineTuningJob, manifest["reproduces"])
    if original is not None and original.agency_id != session.get(FineTuningJob, manifest["job"]).agency_id:
        original = None  # another agency's job: nothing to compare with
    theirs = {p["step"]: p["train_loss"] for p in (json.loads(original.manifest or "{}").get("curve") or [])
              if "train_loss" in p} if original else {}
    ours = {p["step"]: p["train_loss"] for p in manifest.get("curve") or [] if "train_loss" in p}
    shared = sorted(set(theirs) & set(ours))
    delta = max((abs(theirs[s] - ours[s]) for s in shared), default=None)
    return {"of": manifest["reproduces"], "steps_compared": len(shared), "max_train_loss_delta": delta,
            "within_tolerance": delta is not None and delta <= TOLERANCE and len(shared) == len(ours)}


def settings_of_worker():
    """The settings of the worker that started this process (written by it, mode 0600), so a
    server configured in code or by flags trains with exactly its models, database and keys."""
    from hanchang.config import Settings, load_settings

    path = os.environ.get("HANCHANG_SETTINGS_FILE")
    return Settings.model_validate_json(Path(path).read_text()) if path else load_settings()


def main(argv: list[str] | None = None) -> int:
    from hanchang.bootstrap import prepare_database

    args = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_of_worker()
    db = prepare_database(settings)
    try:
        threads = int(os.environ.get("HANCHANG_TRAINING_THREADS") or 0) or None
        return JobRun(db, settings.home, args[0], threads).run()
    finally:
        db.dispose()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


if __name__ == "__main__":
    sys.exit(main())
