"""Writes usage rows and audit records by group commit.

`record` queues a call's usage row and audit record and returns a future that completes when the
transaction holding them has committed; the gateway releases an answer's last bytes only then, so
an answered call always has its records, even if the process is killed right after. Whatever
arrives while one transaction is being written goes into the next one, so under load a
transaction carries many calls and at rest each call gets its own. A batch is one transaction:
every row of it lands, or none does and it is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

from sqlalchemy import insert

from hanchang.audit import trail
from hanchang.audit.checkpoints import CheckpointBook
from hanchang.audit.trail import AuditEntry
from hanchang.audit.usage import Usage
from hanchang.store.accounts import touch_keys
from hanchang.store.db import Database
from hanchang.store.tables import UsageRecord

log = logging.getLogger(__name__)
CHECKPOINT_EVERY_S = 600.0
# Records held in memory while the database is not taking them; beyond this, calls refused for
# that reason are counted per person and service instead (`count_refusal`), so a long outage
# under load cannot exhaust the process's memory.
MAX_PENDING = 20_000


class Recorder:
    """Buffers usage rows and audit entries; writes each batch in one transaction."""

    def __init__(self, db: Database, flush_interval_s: float = 1.0,
                 checkpoints: CheckpointBook | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S):
        self._db = db
        self._checkpoints = checkpoints
        self._checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._rows: list[dict] = []
        self._audit: list[AuditEntry] = []
        self._key_use: dict[int, datetime] = {}
        self._interval = flush_interval_s
        self._committed: asyncio.Future | None = None  # done when the queued rows have committed
        self._waiting_since: float | None = None  # when the oldest record not yet committed was queued
        self._refusals = RefusalTally()
        self._in_flight = 0  # records of the batch being written
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stalled_s(self) -> float:
        """How long the oldest record not yet committed has been waiting (0 when none is)."""
        return 0.0 if self._waiting_since is None else time.monotonic() - self._waiting_since

    @property
    def full(self) -> bool:
        """Whether as many records wait as may be held in memory (`MAX_PENDING`)."""
        return self._in_flight + len(self._rows) + len(self._audit) >= MAX_PENDING

    def count_refusal(self, audit: AuditEntry) -> None:
        """Count, rather than queue, a call refused because records are not being written: the
        trail gets one entry per person and service with the number and the time span."""
        self._refusals.add(audit)
        self._queued()

    def record(self, usage: Usage | None, audit: AuditEntry | None = None) -> asyncio.Future:
        """Queue one call's records (or an audit entry alone, e.g. that an answer was withheld);
        the returned future is done once they have committed (or fails if this recorder closed
        without writing them). Entries are written in the order they were queued."""
        if usage is not None:
            self._rows.append(vars(usage).copy())  # flat fields: a shallow copy is enough
            if usage.api_key_id is not None:
                self._key_use[usage.api_key_id] = usage.created_at
        if audit is not None:
            self._audit.append(audit)
        self._queued()
        return self._pending()

    def _queued(self) -> None:
        """Something now waits to be written: note since when, and wake the writer."""
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._wake.set()

    def _pending(self) -> asyncio.Future:
        if self._committed is None or self._committed.done():
            self._committed = asyncio.get_running_loop().create_future()
        return self._committed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                # Shielded: a stop (aclose cancels this loop) must not abandon a batch mid-write,
                # its thread still committing and its callers never told.
                await asyncio.shield(self.flush())
                failures = 0
            except Exception:  # keep serving; the rows stay queued for the next try
                failures += 1
                log.exception("could not write usage records; will retry")
                await asyncio.sleep(min(0.05 * 2 ** failures, self._interval))
                self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            if not self._rows and not self._key_use and not self._audit and not self._refusals:
                return
            rows, self._rows = self._rows, []
            audit, self._audit = self._audit, []
            key_use, self._key_use = self._key_use, {}
            refusals, self._refusals = self._refusals, RefusalTally()
            committed, self._committed = self._committed, None
            started = time.monotonic()
            self._in_flight = len(rows) + len(audit)
            try:
                await asyncio.to_thread(self._write, rows, audit + refusals.entries(), key_use)
            except Exception:
                self._rows[:0] = rows
                self._audit[:0] = audit
                self._refusals.absorb(refusals)
                for key_id, when in key_use.items():
                    self._key_use.setdefault(key_id, when)
                if committed is not None:  # its waiters now wait for the retry
                    _chain(self._pending(), committed)
                raise
            finally:
                self._in_flight = 0
            # What arrived while this batch was written has waited since it began, at most.
            self._waiting_since = started if self._rows or self._audit or self._key_use or self._refusals else None
            if committed is not None and not committed.done():
                committed.set_result(None)

    def _write(self, rows: list[dict], audit: list[AuditEntry], key_use: dict[int, datetime]) -> None:
        with self._db.session() as session:
            if rows:
                session.execute(insert(UsageRecord.__table__), rows)
            trail.append(session, audit)
            touch_keys(session, key_use)
        if audit and time.monotonic() - self._last_checkpoint > self._checkpoint_every_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Sign the chain's head into the checkpoint file (periodically, and at shutdown)."""
        if self._checkpoints is None:
            return
        self._last_checkpoint = time.monotonic()
        try:
            with self._db.session() as session:
                self._checkpoints.write(session)
        except Exception:  # the trail itself is written; the next checkpoint will cover it
            log.exception("could not write an audit checkpoint")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            if self._committed is not None and not self._committed.done():
                self._committed.set_exception(RecordsNotWritten())
            raise
        await asyncio.to_thread(self.checkpoint)


class RefusalTally:
    """Calls refused while the trail was full, counted per (agency, person, role, service)."""

    def __init__(self):
        self._counts: dict[tuple, list] = {}  # key -> [count, first at, last at]

    def __bool__(self) -> bool:
        return bool(self._counts)

    def add(self, audit: AuditEntry) -> None:
        key = (audit.agency_code, audit.user_id, audit.user_name, audit.role, audit.action)
        self._bump(key, 1, audit.created_at, audit.created_at)

    def absorb(self, other: RefusalTally) -> None:
        """Take back the counts of a batch that could not be written."""
        for key, (count, first, last) in other._counts.items():
            self._bump(key, count, first, last)

    def _bump(self, key: tuple, count: int, first: datetime, last: datetime) -> None:
        slot = self._counts.get(key)
        if slot is None:
            self._counts[key] = [count, first, last]
        else:
            slot[0] += count
            slot[1], slot[2] = min(slot[1], first), max(slot[2], last)

    def entries(self) -> list[AuditEntry]:
        return [AuditEntry(category="ai", action=action, outcome="audit_unavailable", status=503,
                           agency_code=agency, user_id=user_id, user_name=user_name, role=role,
                           detail={"refused_calls": count, "first_at": first.isoformat(),
                                   "last_at": last.isoformat(), "counted_not_listed": True},
                           created_at=last)
                for (agency, user_id, user_name, role, action), (count, first, last) in self._counts.items()]


class RecordsNotWritten(Exception):
    """The recorder stopped before these records could be committed."""


def _chain(later: asyncio.Future, earlier: asyncio.Future) -> None:
    """Complete `earlier` the way `later` completes."""
    def copy(done: asyncio.Future) -> None:
        if earlier.done():
            return
        if done.cancelled() or done.exception() is not None:
            earlier.set_exception(done.exception() if not done.cancelled() else RecordsNotWritten())
        else:
            earlier.set_result(None)
    later.add_done_callback(copy)
