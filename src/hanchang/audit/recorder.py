"""Writes usage rows and audit records in small batches, off the request path.

A batch is one transaction: every row of it lands, or none does and it is retried.
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


class Recorder:
    """Buffers usage rows and audit entries; writes each batch in one transaction."""

    def __init__(self, db: Database, flush_interval_s: float = 0.25, batch_size: int = 500,
                 checkpoints: CheckpointBook | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S):
        self._db = db
        self._checkpoints = checkpoints
        self._checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._rows: list[dict] = []
        self._audit: list[AuditEntry] = []
        self._key_use: dict[int, datetime] = {}
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def record(self, usage: Usage, audit: AuditEntry | None = None) -> None:
        self._rows.append(vars(usage).copy())  # flat fields: a shallow copy is enough
        if audit is not None:
            self._audit.append(audit)
        if usage.api_key_id is not None:
            self._key_use[usage.api_key_id] = usage.created_at
        if len(self._rows) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep serving; the rows stay buffered for the next try
                log.exception("could not write usage records; will retry")

    async def flush(self) -> None:
        async with self._lock:
            if not self._rows and not self._key_use and not self._audit:
                return
            rows, self._rows = self._rows, []
            audit, self._audit = self._audit, []
            key_use, self._key_use = self._key_use, {}
            try:
                await asyncio.to_thread(self._write, rows, audit, key_use)
            except Exception:
                self._rows[:0] = rows
                self._audit[:0] = audit
                for key_id, when in key_use.items():
                    self._key_use.setdefault(key_id, when)
                raise

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
        await self.flush()
        await asyncio.to_thread(self.checkpoint)
