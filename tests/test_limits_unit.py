"""The sliding-window arithmetic of the in-process limiter, with a controlled clock."""

from __future__ import annotations

import asyncio

import pytest

from hanchang.gateway.errors import RateLimited
from hanchang.gateway.limits import Budget, InProcessLimiter


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro):
    return asyncio.run(coro)


def test_window_slides_instead_of_resetting():
    clock = Clock(600.0)  # the start of a minute
    limiter = InProcessLimiter(clock)
    budget = [Budget("key:1", 4, 0)]
    for _ in range(4):
        run(limiter.admit(budget))
    with pytest.raises(RateLimited) as info:
        run(limiter.admit(budget))
    assert info.value.headers["Retry-After"] == "60"
    clock.now = 660.0 + 15  # a quarter into the next minute: 3 of the 4 still count
    run(limiter.admit(budget))
    with pytest.raises(RateLimited):
        run(limiter.admit(budget))
    clock.now = 781.0  # two windows later everything has expired
    for _ in range(4):
        run(limiter.admit(budget))


def test_refused_request_counts_against_nothing():
    limiter = InProcessLimiter(Clock(0.0))
    key, agency = Budget("key:1", 10, 0), Budget("agency:A", 1, 0)
    run(limiter.admit([agency, key]))
    for _ in range(3):
        with pytest.raises(RateLimited):
            run(limiter.admit([agency, key]))
    run(limiter.admit([key]))  # the key's own budget only holds the one admitted request
    assert limiter._counters[("key:1", "req")][2] == 2


def test_tokens_are_checked_before_and_added_after():
    limiter = InProcessLimiter(Clock(0.0))
    budget = [Budget("key:1", 0, 100)]
    run(limiter.admit(budget))
    run(limiter.add_tokens(budget, 99))
    run(limiter.admit(budget))
    run(limiter.add_tokens(budget, 1))
    with pytest.raises(RateLimited, match="100 tokens per minute"):
        run(limiter.admit(budget))


def test_zero_means_unlimited():
    limiter = InProcessLimiter(Clock(0.0))
    for _ in range(1000):
        run(limiter.admit([Budget("key:1", 0, 0)]))
