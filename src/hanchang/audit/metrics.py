"""Prometheus metrics, with the official client, right with one process or several.

`hanchang serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the first
metric exists, so every worker writes its samples there and `/metrics` (whichever worker
answers) adds them up (prometheus-client's multiprocess mode). An application built in-process
(tests, embedding) without that variable keeps the client's ordinary in-memory registry.

Metrics are made on first use, not at import, so the mode follows the environment at start-up.

A model call's figures (count, latency, time to first token, tokens, cost) and the budget
gauges are not written to the client one by one: in multiprocess mode every write takes a lock,
checks the process id and packs a value into the shared file, ~60 Python calls a request.
They are added up in this process (one call, a few dict and list operations) and written in
batches by `flush()`: every second (`flush_periodically`, run by the server), before every
scrape this process answers, and at shutdown. Another worker's figures are therefore at most
a second old in a scrape; Prometheus scrapes every 15 s or more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds. The guideline's SLO lines (7 s Q&A, 10 s inference) are bucket edges, so the share
# of requests within them is read exactly.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
RETRIEVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    latency: Any
    ttft: Any
    tokens: Any
    cost: Any
    policy: Any
    pii: Any
    retrieval: Any
    upstream_up: Any
    budget_used: Any
    budget_refusals: Any


_made: _Metrics | None = None
_lock = threading.Lock()
# Labelled children by (metric name, label values): `.labels()` validates and locks on every call,
# which costs more than the increment itself on the request path.
_children: dict[tuple, Any] = {}
# The last value set per gauge child, so an unchanged gauge is not written again.
_last_set: dict[tuple, float] = {}


class _CallTotals:
    """What one (model, agency, service, outcome) added up since the last flush."""

    __slots__ = ("cost_won", "latencies", "tokens_in", "tokens_out", "ttfts")

    def __init__(self):
        self.latencies: list[float] = []
        self.ttfts: list[float] = []
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_won = 0.0


class BudgetStanding(Protocol):
    def ratios(self) -> Iterable[tuple[str, str, float]]:
        """(scope, kind, share used) for every limited budget."""


# Figures waiting for the next flush, guarded by _pending_lock (observers run on the event loop,
# a scrape's flush in a worker thread).
_pending_lock = threading.Lock()
_pending_calls: dict[tuple[str, str, str, str], _CallTotals] = {}
_pending_standings: dict[tuple[str, ...], BudgetStanding] = {}
_flush_lock = threading.Lock()  # one flush at a time, so a scrape waits for one under way


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _set_changed(metric: Any, value: float, *labels: str) -> None:
    key = (id(metric), labels)
    if _last_set.get(key) != value:
        _last_set[key] = value
        _child(metric, *labels).set(value)


def _create() -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram, values

    if os.environ.get(MULTIPROC_ENV) and values.ValueClass.__name__ != "MmapedValue":
        # prometheus_client was imported (by someone) before the directory was set: switch now,
        # before any metric exists, as the client itself would have at import.
        values.ValueClass = values.get_value_class()
    by_call = ("model", "agency", "service", "outcome")
    return _Metrics(
        requests=Counter("hanchang_requests", "Model calls by model, agency, service and outcome "
                         "(ok, no_sources, or the error code).", by_call),
        latency=Histogram("hanchang_request_duration_seconds", "Whole-request latency of model calls.",
                          by_call, buckets=LATENCY_BUCKETS),
        ttft=Histogram("hanchang_time_to_first_token_seconds", "Time to the first streamed token.",
                       ("model", "agency", "service"), buckets=TTFT_BUCKETS),
        tokens=Counter("hanchang_tokens", "Tokens read (in) and written (out).",
                       ("model", "agency", "service", "direction")),
        cost=Counter("hanchang_cost_won", "Cost of model calls in won, at the configured prices.",
                     ("model", "agency")),
        policy=Counter("hanchang_policy_decisions", "Grade-policy reroutes and refusals by data grade.",
                       ("grade", "decision")),
        pii=Counter("hanchang_pii_entities", "Personal-data entities found in requests, by type and "
                    "what the guard did (mask, pseudonymize, allow, block).", ("type", "mode")),
        retrieval=Histogram("hanchang_retrieval_duration_seconds", "Knowledge-base search latency.",
                            buckets=RETRIEVAL_BUCKETS),
        upstream_up=Gauge("hanchang_upstream_up", "1 when the model answered its last probe or call.",
                          ("model",), multiprocess_mode="mostrecent"),
        budget_used=Gauge("hanchang_budget_used_ratio", "Share of the current period's budget used, "
                          "by scope (agency:CODE, user:ID) and kind (requests, tokens, won).",
                          ("scope", "kind"), multiprocess_mode="mostrecent"),
        budget_refusals=Counter("hanchang_budget_refusals", "Requests refused because a budget was "
                                "used up.", ("scope", "kind")),
    )


def _m() -> _Metrics:
    global _made
    if _made is None:
        with _lock:
            if _made is None:
                _made = _create()
    return _made


def observe_call(*, model: str, agency: str, service: str, outcome: str, latency_s: float,
                 ttft_s: float | None, tokens_in: int, tokens_out: int, cost_won: float) -> None:
    """One model call's figures, added up here and written at the next flush."""
    key = (model, agency, service, outcome)
    with _pending_lock:
        totals = _pending_calls.get(key)
        if totals is None:
            totals = _pending_calls[key] = _CallTotals()
        totals.latencies.append(latency_s)
        if ttft_s is not None:
            totals.ttfts.append(ttft_s)
        totals.tokens_in += tokens_in
        totals.tokens_out += tokens_out
        totals.cost_won += cost_won


def note_budget_standing(scopes: tuple[str, ...], standing: BudgetStanding) -> None:
    """The budgets a request was admitted against; their gauges are written at the next flush."""
    with _pending_lock:
        _pending_standings[scopes] = standing


def flush() -> None:
    """Write what was added up since the last flush into the client's metrics."""
    with _flush_lock:
        global _pending_calls, _pending_standings
        with _pending_lock:
            calls, _pending_calls = _pending_calls, {}
            standings, _pending_standings = _pending_standings, {}
        if not (calls or standings):
            return
        m = _made or _m()
        for (model, agency, service, outcome), totals in calls.items():
            _child(m.requests, model, agency, service, outcome).inc(len(totals.latencies))
            _observe_all(_child(m.latency, model, agency, service, outcome), totals.latencies)
            if totals.ttfts:
                _observe_all(_child(m.ttft, model, agency, service), totals.ttfts)
            if totals.tokens_in:
                _child(m.tokens, model, agency, service, "in").inc(totals.tokens_in)
            if totals.tokens_out:
                _child(m.tokens, model, agency, service, "out").inc(totals.tokens_out)
            if totals.cost_won:
                _child(m.cost, model, agency).inc(totals.cost_won)
        for standing in standings.values():
            for scope, kind, ratio in standing.ratios():
                set_budget_used(scope, kind, ratio)


def _observe_all(histogram: Any, values: list[float]) -> None:
    """Observe many values: per bucket and the sum once each (the client's own histogram child
    keeps `_sum` and one value per bucket, `_buckets`, cumulated at exposition); one by one
    through the public API should a future client lay them out otherwise."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)
        counts[index] = counts.get(index, 0) + 1
    total.inc(sum(values))
    for index, count in counts.items():
        buckets[index].inc(count)


async def flush_periodically(interval_s: float = 1.0) -> None:
    """Flush every `interval_s` until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                flush()
            except Exception:  # a metrics write must never stop the server; said in its log
                log.exception("writing metrics failed")
    finally:
        flush()


def observe_policy(grade: str, decision: str) -> None:
    _child(_m().policy, grade, decision).inc()


def observe_pii(counts: Mapping[str, int], mode: str) -> None:
    m = _m()
    for kind, count in counts.items():
        if count:
            _child(m.pii, kind, mode).inc(count)


def observe_retrieval(seconds: float) -> None:
    _m().retrieval.observe(seconds)


def set_upstream_up(model: str, up: bool, *, probe: bool = False) -> None:
    """A call's outcome writes only a change; a health probe always writes (it is the heartbeat
    that keeps this process's value the most recent one across workers)."""
    if probe:
        _last_set[(id(_m().upstream_up), (model,))] = 1.0 if up else 0.0
        _child(_m().upstream_up, model).set(1.0 if up else 0.0)
    else:
        _set_changed(_m().upstream_up, 1.0 if up else 0.0, model)


def set_budget_used(scope: str, kind: str, ratio: float) -> None:
    """The share used, to the nearest 0.1 % (finer changes are not written again)."""
    _set_changed(_m().budget_used, round(ratio, 3), scope, kind)


def observe_budget_refusal(scope: str, kind: str) -> None:
    _child(_m().budget_refusals, scope, kind).inc()


def exposition() -> tuple[bytes, str]:
    """The text a Prometheus scrape reads: every process's samples in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _m()  # so the families exist (with no samples) before the first call
    flush()  # this process's figures up to now
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        # The multiprocess registry holds only what the workers wrote; the answering process's own
        # process_* and python_* figures are added, as a single process shows them.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        return generate_latest(registry) + _build_info(), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + _build_info(), CONTENT_TYPE_LATEST


def _build_info() -> bytes:
    """`hanchang_build_info{version,python}` 1: which build answers (the usual Prometheus idiom)."""
    import platform as host

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    from hanchang import __version__

    class BuildInfo:
        def collect(self):
            family = GaugeMetricFamily("hanchang_build_info", "The Hanchang build answering, as labels",
                                       labels=["version", "python"])
            family.add_metric([__version__, host.python_version()], 1)
            yield family

    registry = CollectorRegistry()
    registry.register(BuildInfo())
    return generate_latest(registry)


def prepare_multiprocess_dir(path: str) -> None:
    """Empty (or create) the samples directory before any worker starts, as the client requires."""
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path, mode=0o700, exist_ok=True)

