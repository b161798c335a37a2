"""The operations page's figures: calls, tokens, cost, latency, users, policy and feedback over
time, and the recent failures — for one agency, or every agency for a platform admin.

Times are bucketed by the hour for ranges up to two days, by the day beyond, in the budget time
zone (Asia/Seoul by default), so a day means a Korean working day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select

from hanchang.core.errors import InvalidInput
from hanchang.core.permissions import SEE_EVERY_AGENCY, can
from hanchang.core.principal import Principal
from hanchang.store.db import Database
from hanchang.store.tables import Agency, Feedback, UsageRecord

MAX_DAYS = 366
REFUSALS = {"data_grade_refused": "grade", "personal_data_blocked": "pii", "budget_exhausted": "budget",
            "rate_limit_exceeded": "rate"}


@dataclass(frozen=True)
class Range:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive
    step: timedelta

    @classmethod
    def of_days(cls, first: date, last: date, zone: str) -> Range:
        if last < first:
            raise InvalidInput("끝 날짜가 시작 날짜보다 앞섭니다.", "the end date is before the start date", param="to")
        if (last - first).days >= MAX_DAYS:
            raise InvalidInput(f"기간은 {MAX_DAYS}일까지 볼 수 있습니다.", f"at most {MAX_DAYS} days", param="to")
        tz = ZoneInfo(zone)
        start = datetime(first.year, first.month, first.day, tzinfo=tz)
        end = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)
        return cls(start, end, timedelta(hours=1) if end - start <= timedelta(days=2) else timedelta(days=1))

    def buckets(self) -> list[datetime]:
        found, at = [], self.start
        while at < self.end:
            found.append(at)
            at += self.step
        return found

    def index(self, when: datetime) -> int:
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return int((when - self.start) / self.step)


def overview(db: Database, span: Range, agency: str | None, slo_lines: dict[str, float]) -> dict[str, Any]:
    buckets = span.buckets()
    n = len(buckets)
    # Compared in UTC: SQLite keeps times as text without their zone.
    start, end = span.start.astimezone(UTC), span.end.astimezone(UTC)
    usage = select(UsageRecord.created_at, UsageRecord.model_used, UsageRecord.model_requested,
                   UsageRecord.endpoint, UsageRecord.status, UsageRecord.error_code, UsageRecord.latency_ms,
                   UsageRecord.tokens_in, UsageRecord.tokens_out, UsageRecord.cost_won, UsageRecord.user_id,
                   UsageRecord.rerouted, UsageRecord.grounded, UsageRecord.agency_code, UsageRecord.user_name
                   ).where(UsageRecord.created_at >= start, UsageRecord.created_at < end)
    ratings = select(Feedback.created_at, Feedback.rating).where(Feedback.created_at >= start,
                                                                 Feedback.created_at < end)
    if agency:
        usage = usage.where(UsageRecord.agency_code == agency)
        ratings = ratings.where(Feedback.agency_code == agency)
    with db.session() as session:
        rows = session.execute(usage.order_by(UsageRecord.created_at)).all()
        feedback = session.execute(ratings).all()

    def series() -> list[float]:
        return [0] * n

    by_model: dict[str, list[float]] = defaultdict(series)
    by_service: dict[str, list[float]] = defaultdict(series)
    tokens_in, tokens_out, cost, errors = series(), series(), series(), series()
    refusals: dict[str, list[float]] = {kind: series() for kind in REFUSALS.values()}
    reroutes = series()
    latencies: list[list[int]] = [[] for _ in range(n)]
    users: list[set[int]] = [set() for _ in range(n)]
    failures = []
    totals = defaultdict(float)
    grounded_answers = 0
    for (created, model_used, requested, endpoint, status, code, latency_ms, t_in, t_out, won, user_id,
         rerouted, grounded, agency_code, user_name) in rows:
        i = span.index(created)
        if not 0 <= i < n:
            continue
        model = model_used or requested
        by_model[model][i] += 1
        by_service[endpoint][i] += 1
        tokens_in[i] += t_in
        tokens_out[i] += t_out
        cost[i] += won or 0
        totals["calls"] += 1
        totals["tokens"] += t_in + t_out
        totals["cost_won"] += won or 0
        if status >= 400 and status != 499:
            errors[i] += 1
            totals["errors"] += 1
        if code in REFUSALS:
            refusals[REFUSALS[code]][i] += 1
        if rerouted:
            reroutes[i] += 1
        if status == 200 and model_used and not endpoint.startswith("embeddings"):
            latencies[i].append(latency_ms)
            grounded_answers += int(bool(grounded))
        if user_id is not None:
            users[i].add(user_id)
        if status >= 500 or (status >= 400 and code not in REFUSALS and status != 499):
            failures.append({"at": _iso(created), "agency": agency_code, "user": user_name, "model": model,
                             "service": endpoint, "status": status, "code": code, "latency_ms": latency_ms})

    p50, p90 = [], []
    for values in latencies:
        if values:
            seconds = np.asarray(values, dtype=float) / 1000
            p50.append(round(float(np.percentile(seconds, 50)), 3))
            p90.append(round(float(np.percentile(seconds, 90)), 3))
        else:
            p50.append(None)
            p90.append(None)
    up, down = series(), series()
    for created, rating in feedback:
        i = span.index(created)
        if 0 <= i < n:
            (up if rating > 0 else down)[i] += 1
    rated = sum(up) + sum(down)
    all_users = set().union(*users) if users else set()
    return {
        "from": span.start.isoformat(), "to": span.end.isoformat(),
        "step": "hour" if span.step == timedelta(hours=1) else "day",
        "buckets": [int(b.timestamp()) for b in buckets],
        "calls_by_model": dict(by_model), "calls_by_service": dict(by_service),
        "tokens": {"in": tokens_in, "out": tokens_out}, "cost_won": [round(c, 2) for c in cost],
        "errors": errors, "latency": {"p50": p50, "p90": p90, "slo": slo_lines},
        "active_users": [len(u) for u in users], "refusals": refusals, "reroutes": reroutes,
        "feedback": {"up": up, "down": down,
                     "rate": [round(u / (u + d), 3) if u + d else None for u, d in zip(up, down, strict=True)]},
        "totals": {"calls": int(totals["calls"]), "errors": int(totals["errors"]),
                   "tokens": int(totals["tokens"]), "cost_won": round(totals["cost_won"], 2),
                   "active_users": len(all_users), "grounded_answers": grounded_answers,
                   "thumbs_up_rate": round(sum(up) / rated, 3) if rated else None,
                   "reroutes": int(sum(reroutes)), "refusals": {k: int(sum(v)) for k, v in refusals.items()}},
        "failures": failures[-50:][::-1],
    }


def _iso(when: datetime) -> str:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def visible_agencies(db: Database, principal: Principal) -> list[dict[str, str]]:
    """The agencies whose figures the caller may pick (every one for a platform admin)."""
    query = select(Agency.code, Agency.name).order_by(Agency.code)
    if not can(principal, SEE_EVERY_AGENCY):
        query = query.where(Agency.id == principal.agency_id)
    with db.session() as session:
        return [{"code": code, "name": name} for code, name in session.execute(query)]
