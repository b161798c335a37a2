"""Service-level objectives as data (guideline 3.2.5, table 20): targets from the configuration,
measured values from usage rows and health samples, and what is left of each error budget.

- Latency: the configured percentile (90) of whole-request latency of answered calls, per model
  and service, against `qa_seconds` for grounded answers and `inference_seconds` for the rest
  (embeddings are not answers and are left out). Its error budget is the 10 % allowed to be slow.
- Availability: the lower of two measures — the share of health probes in which the model could
  answer, and the share of its requests that did not fail on our side (5xx). Its error budget is
  the downtime the target allows in the window.
- Capacity: the most distinct users active in any 5-minute interval, against `capacity_users`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select

from hanchang.config import SloConfig
from hanchang.store.db import Database
from hanchang.store.tables import HealthSample, UsageRecord, utcnow

WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
BUSY_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True)
class LatencyObjective:
    model: str
    service: str
    kind: str  # qa | inference
    calls: int
    target_s: float
    percentile: float
    measured_s: float | None  # the percentile's latency
    within_share: float | None  # share of calls within the target
    budget_used: float | None  # slow share / allowed slow share (1.0 = budget spent)

    @property
    def met(self) -> bool | None:
        return None if self.measured_s is None else self.measured_s <= self.target_s


@dataclass(frozen=True)
class AvailabilityObjective:
    model: str
    target: float
    probes: int
    probe_availability: float | None
    requests: int
    request_availability: float | None
    measured: float | None
    allowed_down_minutes: float
    down_minutes: float | None
    budget_used: float | None

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.measured >= self.target


@dataclass(frozen=True)
class CapacityObjective:
    capacity_users: int
    peak_users: int
    peak_at: str | None
    active_users: int

    @property
    def met(self) -> bool:
        return self.peak_users <= self.capacity_users


@dataclass(frozen=True)
class SloReport:
    window: str
    since: str
    until: str
    latency: list[LatencyObjective]
    availability: list[AvailabilityObjective]
    capacity: CapacityObjective

    def as_dict(self) -> dict:
        def with_met(obj) -> dict:
            return {**asdict(obj), "met": obj.met}
        return {"window": self.window, "since": self.since, "until": self.until,
                "latency": [with_met(o) for o in self.latency],
                "availability": [with_met(o) for o in self.availability],
                "capacity": with_met(self.capacity)}


def is_answer(endpoint: str) -> bool:
    return not endpoint.startswith("embeddings")


def measure(db: Database, slo: SloConfig, window: str = "month", *, agency: str | None = None,
            now: datetime | None = None) -> SloReport:
    until = now or utcnow()
    since = until - WINDOWS[window]
    query = select(UsageRecord.model_used, UsageRecord.model_requested, UsageRecord.endpoint,
                   UsageRecord.grounded, UsageRecord.status, UsageRecord.latency_ms, UsageRecord.user_id,
                   UsageRecord.created_at).where(UsageRecord.created_at >= since, UsageRecord.created_at < until)
    if agency:
        query = query.where(UsageRecord.agency_code == agency)
    with db.session() as session:
        rows = session.execute(query).all()
        probes = session.execute(select(HealthSample.model, HealthSample.ok).where(
            HealthSample.created_at >= since, HealthSample.created_at < until)).all()

    latencies: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    requests: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # model -> [requests, 5xx]
    busy: dict[datetime, set[int]] = defaultdict(set)
    for model_used, requested, endpoint, grounded, status, latency_ms, user_id, created in rows:
        model = model_used or requested
        counts = requests[model]
        counts[0] += 1
        counts[1] += int(status >= 500)  # our side failed (a 499 is the caller leaving: < 500)
        if is_answer(endpoint) and status == 200 and model_used:
            latencies[(model, endpoint, "qa" if grounded else "inference")].append(latency_ms)
        if user_id is not None:
            created = created if created.tzinfo else created.replace(tzinfo=until.tzinfo)
            bucket = datetime.fromtimestamp(created.timestamp() // BUSY_INTERVAL.total_seconds()
                                            * BUSY_INTERVAL.total_seconds(), until.tzinfo)
            busy[bucket].add(user_id)

    allowed_slow = 1 - slo.latency_percentile / 100
    latency = []
    for (model, service, kind), values in sorted(latencies.items()):
        target = slo.qa_seconds if kind == "qa" else slo.inference_seconds
        seconds = np.asarray(values, dtype=float) / 1000
        within = float((seconds <= target).mean())
        latency.append(LatencyObjective(model, service, kind, len(values), target, slo.latency_percentile,
                                        round(float(np.percentile(seconds, slo.latency_percentile)), 3),
                                        round(within, 4), round((1 - within) / allowed_slow, 3)))

    probe_counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # model -> [samples, ok]
    for model, ok in probes:
        probe_counts[model][0] += 1
        probe_counts[model][1] += int(bool(ok))
    minutes = WINDOWS[window].total_seconds() / 60
    allowed_down = (1 - slo.availability) * minutes
    availability = []
    for model in sorted(set(probe_counts) | set(requests)):
        samples, ok = probe_counts.get(model, (0, 0))
        total, failed = requests.get(model, (0, 0))
        by_probe = ok / samples if samples else None
        by_request = 1 - failed / total if total else None
        measured = min((v for v in (by_probe, by_request) if v is not None), default=None)
        down = (1 - measured) * minutes if measured is not None else None
        availability.append(AvailabilityObjective(
            model, slo.availability, samples, _round(by_probe), total, _round(by_request), _round(measured),
            round(allowed_down, 2), round(down, 2) if down is not None else None,
            round(down / allowed_down, 3) if down is not None and allowed_down else None))

    peak_at, peak = None, 0
    for bucket, users in busy.items():
        if len(users) > peak:
            peak_at, peak = bucket, len(users)
    capacity = CapacityObjective(slo.capacity_users, peak, peak_at.isoformat() if peak_at else None,
                                 len({u for users in busy.values() for u in users}))
    return SloReport(window, since.isoformat(), until.isoformat(), latency, availability, capacity)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
