"""Model health samples: each model probed every few seconds, kept for availability vs the SLO.

Availability over a window = the share of samples in which the model could answer. Each
sample also sets `hanchang_upstream_up` for Prometheus. On PostgreSQL one process of all the
hosts and workers samples (the holder of an advisory lock on a connection of its own); if it
dies, its connection closes and another process takes over at its next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import insert

from hanchang.audit import metrics
from hanchang.gateway.probe import USABLE_STATES
from hanchang.gateway.router import Gateway
from hanchang.store.db import Database
from hanchang.store.tables import HealthSample, utcnow

log = logging.getLogger(__name__)


LEASE_KEY = (0x4843, 0x4845)  # pg_try_advisory_lock(class, key): the one sampling process


class SamplingLease:
    """Whether this process is the one that samples (always, on SQLite: one process)."""

    def __init__(self, db: Database):
        self._db = db
        self._connection = None

    def held(self) -> bool:
        if self._db.engine.dialect.name != "postgresql":
            return True
        try:
            if self._connection is None:
                connection = self._db.engine.raw_connection()
                connection.detach()  # its own, for the process's lifetime: the lock lives with it
                connection.dbapi_connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", LEASE_KEY)
                    if not cursor.fetchone()[0]:
                        connection.close()
                        return False
                self._connection = connection
                return True
            with self._connection.cursor() as cursor:  # still ours while the connection lives
                cursor.execute("SELECT 1")
            return True
        except Exception:  # a lost connection lost the lock too: try again next round
            self.release()
            return False

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


class HealthSampler:
    def __init__(self, db: Database, gateway: Gateway, interval_s: float):
        self._db, self._gateway, self._interval = db, gateway, interval_s
        self._task: asyncio.Task | None = None
        self.lease = SamplingLease(db)

    async def round(self) -> list[dict] | None:
        """One round: sample if this process is the sampling one."""
        if not await asyncio.to_thread(self.lease.held):
            return None
        return await self.sample()

    async def sample(self) -> list[dict]:
        """Probe every model once and store the result."""
        async def one(spec) -> dict:
            started = time.perf_counter()
            try:
                state = (await self._gateway.model_status(spec)).get("state")
            except Exception:  # a probe that fails is an unavailable model
                state = "unreachable"
            ok = state in USABLE_STATES
            metrics.set_upstream_up(spec.name, ok, probe=True)
            return {"created_at": utcnow(), "model": spec.name, "ok": ok,
                    "latency_ms": int((time.perf_counter() - started) * 1000)}

        rows = list(await asyncio.gather(*(one(spec) for spec in self._gateway.registry.configured)))
        await asyncio.to_thread(self._write, rows)
        return rows

    def _write(self, rows: list[dict]) -> None:
        with self._db.session() as session:
            session.execute(insert(HealthSample.__table__), rows)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-sampler")

    async def _run(self) -> None:
        while True:  # first sample one interval after start: start-up itself is not an outage
            await asyncio.sleep(self._interval)
            try:
                await self.round()
            except Exception:  # keep sampling; a database hiccup loses one sample
                log.exception("could not record model health")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.lease.release)
