"""Per-key and per-agency rate limits: requests and tokens per minute.

Sliding-window counters (the current minute plus the weighted previous one). In-process
by default; Redis when HANCHANG_REDIS_URL is set, so several workers share one budget.
If Redis cannot be reached the request is refused (fail closed), never let through.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from hanchang.gateway.errors import LimiterUnavailable, RateLimited

WINDOW_S = 60


@dataclass(frozen=True)
class Budget:
    """One scope's limits; 0 means unlimited."""

    scope: str  # e.g. "key:12" or "agency:MOIS"
    requests_per_minute: int
    tokens_per_minute: int


class RateLimiter(Protocol):
    async def admit(self, budgets: list[Budget]) -> None:
        """Count one request against every budget, or raise RateLimited (nothing counted)."""

    async def add_tokens(self, budgets: list[Budget], tokens: int) -> None: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def _estimate(prev: float, curr: float, now: float) -> float:
    elapsed = (now % WINDOW_S) / WINDOW_S
    return prev * (1 - elapsed) + curr


def _retry_after(now: float) -> int:
    return max(1, math.ceil(WINDOW_S - now % WINDOW_S))


def _refusal(budget: Budget, what: str, limit: int, now: float) -> RateLimited:
    wait = _retry_after(now)
    return RateLimited(
        f"Rate limit reached for {budget.scope}: {limit} {what} per minute. "
        f"Try again in {wait} s or ask your administrator for a higher limit.",
        headers={"Retry-After": str(wait)},
    )


class InProcessLimiter:
    def __init__(self, clock=time.time):
        self._clock = clock
        # (scope, kind) -> [window index, previous window count, current window count]
        self._counters: dict[tuple[str, str], list[float]] = {}

    def _counter(self, scope: str, kind: str, now: float) -> list[float]:
        window = int(now // WINDOW_S)
        counter = self._counters.get((scope, kind))
        if counter is None:
            counter = self._counters[(scope, kind)] = [window, 0.0, 0.0]
        elif counter[0] != window:
            counter[1] = counter[2] if counter[0] == window - 1 else 0.0
            counter[2] = 0.0
            counter[0] = window
        return counter

    async def admit(self, budgets: list[Budget]) -> None:
        now = self._clock()
        for budget in budgets:
            if budget.requests_per_minute:
                c = self._counter(budget.scope, "req", now)
                if _estimate(c[1], c[2], now) + 1 > budget.requests_per_minute:
                    raise _refusal(budget, "requests", budget.requests_per_minute, now)
            if budget.tokens_per_minute:
                c = self._counter(budget.scope, "tok", now)
                if _estimate(c[1], c[2], now) >= budget.tokens_per_minute:
                    raise _refusal(budget, "tokens", budget.tokens_per_minute, now)
        for budget in budgets:
            if budget.requests_per_minute:
                self._counter(budget.scope, "req", now)[2] += 1

    async def add_tokens(self, budgets: list[Budget], tokens: int) -> None:
        now = self._clock()
        for budget in budgets:
            if budget.tokens_per_minute and tokens:
                self._counter(budget.scope, "tok", now)[2] += tokens

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


# Checks every (scope, kind) first and only then counts the request, atomically.
# KEYS: for each checked budget, its previous- and current-window keys.
# ARGV: elapsed fraction, n, then per budget: limit, cost (1 for requests, 0 for tokens).
_ADMIT_LUA = """
local elapsed = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local prev = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local curr = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local used = prev * (1 - elapsed) + curr
  if (cost > 0 and used + cost > limit) or (cost == 0 and used >= limit) then
    return i
  end
end
for i = 1, n do
  local cost = tonumber(ARGV[2 + 2 * i])
  if cost > 0 then
    redis.call('INCRBY', KEYS[2 * i], cost)
    redis.call('EXPIRE', KEYS[2 * i], 180)
  end
end
return 0
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "hanchang:rl", clock=time.time):
        import redis.asyncio as redis_async

        self._redis = redis_async.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix
        self._clock = clock
        self._admit = self._redis.register_script(_ADMIT_LUA)

    def _keys(self, scope: str, kind: str, now: float) -> tuple[str, str]:
        window = int(now // WINDOW_S)
        return (f"{self._prefix}:{scope}:{kind}:{window - 1}",
                f"{self._prefix}:{scope}:{kind}:{window}")

    async def admit(self, budgets: list[Budget]) -> None:
        now = self._clock()
        keys: list[str] = []
        args: list[float] = [(now % WINDOW_S) / WINDOW_S, 0]
        checks: list[tuple[Budget, str, int]] = []
        for budget in budgets:
            for kind, limit, cost in (("req", budget.requests_per_minute, 1),
                                      ("tok", budget.tokens_per_minute, 0)):
                if limit:
                    keys.extend(self._keys(budget.scope, kind, now))
                    args.extend([limit, cost])
                    checks.append((budget, kind, limit))
        if not checks:
            return
        args[1] = len(checks)
        try:
            failed = int(await self._admit(keys=keys, args=args))
        except Exception as exc:  # any Redis failure: refuse rather than run unmetered
            raise LimiterUnavailable(
                "The shared rate limiter (Redis) cannot be reached, so requests are refused "
                "for safety. Ask the platform operator to check HANCHANG_REDIS_URL."
            ) from exc
        if failed:
            budget, kind, limit = checks[failed - 1]
            raise _refusal(budget, "requests" if kind == "req" else "tokens", limit, now)

    async def add_tokens(self, budgets: list[Budget], tokens: int) -> None:
        if not tokens:
            return
        now = self._clock()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for budget in budgets:
                    if budget.tokens_per_minute:
                        key = self._keys(budget.scope, "tok", now)[1]
                        pipe.incrby(key, tokens)
                        pipe.expire(key, 180)
                await pipe.execute()
        except Exception:
            # The call already happened; its tokens are lost to the limiter but the next
            # admit() will fail closed if Redis is really gone.
            return

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:  # any failure to answer means not ready
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def create_limiter(redis_url: str | None, prefix: str = "hanchang") -> RateLimiter:
    return RedisLimiter(redis_url, prefix=f"{prefix}:rl") if redis_url else InProcessLimiter()
