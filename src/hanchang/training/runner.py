"""The training worker: takes queued fine-tuning jobs from the database, one at a time, and runs
each in a process of its own (`job_process.py`).

A server runs one in a thread (`training.run_jobs`, on by default); a dedicated training host
runs `hanchang finetune worker`. Jobs are claimed with a conditional update, so several workers
never take the same job; a job whose worker stopped (no heartbeat for two minutes: a restart, a
killed host) is claimed again and resumes from its last checkpoint. A cancelled job's process
stops after its current step, and is killed if it does not within a grace period.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from hanchang.store.db import Database
from hanchang.store.training_tables import FineTuningJob
from hanchang.training import jobs
from hanchang.training.job_process import work_dir, worker_name

log = logging.getLogger(__name__)
CANCEL_GRACE_S = 60.0
MAX_ATTEMPTS = 3


def worker_settings_file(settings) -> Path:
    """The settings a job process reads (this server's, exactly): a file only its owner reads."""
    folder = settings.home / "run"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "training-settings.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(settings.model_dump_json())
    return path


class TrainingWorker:
    def __init__(self, db: Database, home: Path, settings_file: Path, poll_s: float = 2.0,
                 threads: int | None = None):
        self.db, self.home, self.settings_file, self.poll_s, self.threads = db, home, settings_file, poll_s, threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.process: subprocess.Popen | None = None

    def start(self) -> TrainingWorker:
        self._thread = threading.Thread(target=self.loop, name="training-worker", daemon=True)
        self._thread.start()
        return self

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_one():
                    self._stop.wait(self.poll_s)
            except Exception:
                log.exception("training worker: a job could not be run; trying again later")
                self._stop.wait(self.poll_s * 5)

    def run_one(self) -> bool:
        """Claim and run one job to its end; False when none was waiting."""
        with self.db.reading() as session:  # most polls find nothing: no write lock for them
            if not jobs.waiting(session):
                return False
        with self.db.session() as session:
            job = jobs.claim(session, worker_name())
            if job is None:
                return False
            job_id, attempts = job.id, job.attempts
            if attempts > MAX_ATTEMPTS:
                message = (f"학습 프로세스가 {MAX_ATTEMPTS}번 멈춰 작업을 중단했습니다. "
                           "(the job's process stopped too many times)")
                jobs.finish(session, job, "failed", {"code": "too_many_attempts", "param": None, "message": message})
                return True
        self._run_process(job_id)
        return True

    def _run_process(self, job_id: str) -> None:
        log_dir = work_dir(self.home, job_id)
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HANCHANG_SETTINGS_FILE": str(self.settings_file), "PYTHONUNBUFFERED": "1"}
        if self.threads:
            env["HANCHANG_TRAINING_THREADS"] = str(self.threads)
        with (log_dir / "process.log").open("ab") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "hanchang.training.job_process", job_id],
                                            stdout=output, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
            cancel_seen: float | None = None
            while self.process.poll() is None:
                if self._stop.wait(1.0):  # the server stops: the job keeps its process, which keeps
                    return               # beating; a later worker finds it running (or stale)
                if cancel_seen is None and self._cancel_requested(job_id):
                    cancel_seen = time.monotonic()
                if cancel_seen is not None and time.monotonic() - cancel_seen > CANCEL_GRACE_S:
                    self.process.kill()
            code = self.process.returncode
        self._after(job_id, code)

    def _cancel_requested(self, job_id: str) -> bool:
        with self.db.session() as session:
            return bool(session.get(FineTuningJob, job_id).cancel_requested)

    def _after(self, job_id: str, code: int) -> None:
        """A process that ended without finishing its job (killed, out of memory) fails it, or
        cancels it when a cancellation was asked for."""
        with self.db.session() as session:
            job = session.get(FineTuningJob, job_id)
            if job.status in jobs.TERMINAL:
                return
            if job.cancel_requested:
                jobs.finish(session, job, "cancelled")
            else:
                jobs.finish(session, job, "failed", {
                    "code": "training_process_ended", "param": None,
                    "message": f"학습 프로세스가 비정상 종료했습니다(코드 {code}). 로그: "
                               f"training/{job_id}/process.log (the training process ended with code {code})"})

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
