"""Model health samples: each model probed every few seconds, kept for availability vs the SLO.

Availability over a window = the share of samples in which the model could answer. Each
sample also sets `hanchang_upstream_up` for Prometheus.
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


class HealthSampler:
    def __init__(self, db: Database, gateway: Gateway, interval_s: float):
        self._db, self._gateway, self._interval = db, gateway, interval_s
        self._task: asyncio.Task | None = None

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

        rows = list(await asyncio.gather(*(one(spec) for spec in self._gateway.registry)))
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
                await self.sample()
            except Exception:  # keep sampling; a database hiccup loses one sample
                log.exception("could not record model health")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
