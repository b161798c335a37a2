"""One usage row per model call, written in small batches off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, insert, select

from hanchang.store.accounts import touch_keys
from hanchang.store.db import Database
from hanchang.store.tables import UsageRecord, utcnow

log = logging.getLogger(__name__)


@dataclass
class Usage:
    request_id: str
    endpoint: str
    model_requested: str
    status: int
    user_id: int | None = None
    user_name: str | None = None
    api_key_id: int | None = None
    agency_id: int | None = None
    agency_code: str | None = None
    model_used: str | None = None
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    ttft_ms: int | None = None
    error_code: str | None = None
    created_at: datetime = field(default_factory=utcnow)


class UsageRecorder:
    """Buffers rows and writes each batch in one transaction (whole rows or none)."""

    def __init__(self, db: Database, flush_interval_s: float = 0.25, batch_size: int = 500):
        self._db = db
        self._rows: list[dict] = []
        self._key_use: dict[int, datetime] = {}
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def record(self, usage: Usage) -> None:
        self._rows.append(vars(usage).copy())  # flat fields: a shallow copy is enough
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
            if not self._rows and not self._key_use:
                return
            rows, self._rows = self._rows, []
            key_use, self._key_use = self._key_use, {}
            try:
                await asyncio.to_thread(self._write, rows, key_use)
            except Exception:
                self._rows[:0] = rows
                for key_id, when in key_use.items():
                    self._key_use.setdefault(key_id, when)
                raise

    def _write(self, rows: list[dict], key_use: dict[int, datetime]) -> None:
        with self._db.session() as session:
            if rows:
                session.execute(insert(UsageRecord.__table__), rows)
            touch_keys(session, key_use)

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


@dataclass(frozen=True)
class UsageSummaryRow:
    group: str
    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    avg_latency_ms: float
    avg_ttft_ms: float | None


def summarize(db: Database, since: datetime, by: str) -> list[UsageSummaryRow]:
    """Totals per agency or per model since a time."""
    column = {"agency": UsageRecord.agency_code, "model": UsageRecord.model_used,
              "user": UsageRecord.user_name}[by]
    query = (
        select(
            column,
            func.count(),
            func.sum(case((UsageRecord.status >= 400, 1), else_=0)),
            func.coalesce(func.sum(UsageRecord.tokens_in), 0),
            func.coalesce(func.sum(UsageRecord.tokens_out), 0),
            func.avg(UsageRecord.latency_ms),
            func.avg(UsageRecord.ttft_ms),
        )
        .where(UsageRecord.created_at >= since)
        .group_by(column)
        .order_by(func.count().desc())
    )
    with db.session() as session:
        return [
            UsageSummaryRow(str(group or "-"), calls, int(errors or 0), int(t_in), int(t_out),
                            float(lat or 0), float(ttft) if ttft is not None else None)
            for group, calls, errors, t_in, t_out, lat, ttft in session.execute(query)
        ]
