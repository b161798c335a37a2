"""One usage row per model call, and the figures made from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select

from hanchang.store.db import Database
from hanchang.store.tables import UsageRecord, utcnow


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
    cost_won: float = 0.0
    grounded: bool = False
    data_grade: str | None = None
    rerouted: bool = False
    pii_masked: int = 0
    agent_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)


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
