"""Running eval runs: a claimed run item by item, each output item and the run's progress written
together, so a run stopped anywhere resumes at the first item not done; the server's runner takes
queued runs one at a time (`hanchang eval run` runs its own in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hanchang.assist.platform import Platform
from hanchang.audit import trail
from hanchang.core.errors import NotAllowed
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal, Role
from hanchang.evals import datasets, scorers, targets
from hanchang.evals.datasets import Item
from hanchang.evals.results import output_sample_where, run_items, summarise
from hanchang.evals.runs import new_id
from hanchang.store.db import Database
from hanchang.store.keyring import seal_json
from hanchang.store.tables import Agency, EvalOutputItem, EvalRun, User, utcnow

log = logging.getLogger(__name__)
STALE_S = 120.0  # an in-progress run whose heartbeat is older was stopped with its process: resumed
POLL_S = 2.0


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
            return (_principal_of(session, run), run_items(session, run), json.loads(run.config), run.items_done,
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
                                   sample=seal_json(session, run.grade, run.agency_id,
                                                    output_sample_where(run_id, position), sample),
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
