"""Budgets: requests, tokens and won per agency and per user, per calendar month (or day).

Enforced where the rate limits are (the gateway, before any model is called), in Redis when
HANCHANG_REDIS_URL is set so every worker and host spends from one budget, and fail closed: a
budget that cannot be checked refuses the request. A request is counted when admitted (so two
processes can never both take the last request); its tokens and cost when it finishes, so a
token or won budget is overspent by at most the requests already running when it ran out.

Limits come from the configuration (`budgets:`), replaced per agency or user by an
administrator's override (table `budget_overrides`, read again every few seconds).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from hanchang.config import BudgetLimit, BudgetsConfig
from hanchang.core.principal import Principal
from hanchang.gateway.errors import GatewayError, LimiterUnavailable

KINDS = ("requests", "tokens", "won")
KIND_KO = {"requests": "요청", "tokens": "토큰", "won": "비용"}
MILLI = 1000  # won are counted in milli-won so Redis can add integers


@dataclass(frozen=True)
class Period:
    """One budget period: its id (2026-11 or 2026-11-22), label and when the next one starts."""

    id: str
    label_ko: str
    resets_at: datetime  # aware, in the budget time zone

    def seconds_left(self, now: float) -> int:
        return max(1, int(self.resets_at.timestamp() - now + 0.999))


def current_period(config: BudgetsConfig, now: float | None = None) -> Period:
    zone = ZoneInfo(config.timezone)
    local = datetime.fromtimestamp(time.time() if now is None else now, zone)
    if config.period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        return Period(f"{start:%Y-%m-%d}", "오늘", start + timedelta(days=1))
    days = calendar.monthrange(local.year, local.month)[1]
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    return Period(f"{start:%Y-%m}", "이번 달", start + timedelta(days=days))


@dataclass(frozen=True)
class Quota:
    """One scope's limits for the period; 0 means unlimited."""

    scope: str  # agency:MOIS | user:12
    label_ko: str  # 기관 MOIS | 사용자 kim
    requests: int
    tokens: int
    won: float
    limited: tuple[tuple[str, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):  # the limited kinds, worked out once (a Quota is kept per caller)
        kinds = (("requests", self.requests), ("tokens", self.tokens), ("won", self.won))
        object.__setattr__(self, "limited", tuple((kind, limit) for kind, limit in kinds if limit))

    def limits(self) -> dict[str, float]:
        return {"requests": self.requests, "tokens": self.tokens, "won": self.won}


@dataclass(frozen=True)
class Override:
    scope: str
    requests: int | None
    tokens: int | None
    won: float | None
    until: date | None


@dataclass
class Standing:
    """How much of each budget the admitted request leaves used (after counting it)."""

    used: dict[str, dict[str, float]]  # scope -> kind -> used
    quotas: list[Quota]

    def ratios(self) -> Iterator[tuple[str, str, float]]:
        """(scope, kind, share used) of every limited budget."""
        for quota in self.quotas:
            used = self.used.get(quota.scope, {})
            for kind, limit in quota.limited:
                yield quota.scope, kind, used.get(kind, 0) / limit

    def highest(self) -> tuple[Quota, str, float] | None:
        """The fullest budget: (quota, kind, share used)."""
        best = None
        for quota in self.quotas:
            used = self.used.get(quota.scope, {})
            for kind, limit in quota.limited:
                share = used.get(kind, 0) / limit
                if best is None or share > best[2]:
                    best = (quota, kind, share)
        return best


class BudgetExhausted(GatewayError):
    status, code, type = 429, "budget_exhausted", "rate_limit_error"

    def __init__(self, quota: Quota, kind: str, period: Period, now: float):
        limit = quota.limits()[kind]
        shown = f"{limit:,.0f}원" if kind == "won" else f"{int(limit):,}{'건' if kind == 'requests' else '개'}"
        wait = period.seconds_left(now)
        reset = f"{period.resets_at:%Y-%m-%d %H:%M}"
        super().__init__(f"The {period.id} {kind} budget of {quota.scope} ({limit:,.0f}) is used up; it resets "
                         f"at {reset} ({period.resets_at.tzname()}). Ask your administrator to raise it.",
                         headers={"Retry-After": str(wait)})
        self.message_ko = (f"{quota.label_ko}의 {period.label_ko} {KIND_KO[kind]} 예산({shown})을 모두 썼습니다. "
                           f"{reset}({period.resets_at.tzname()})에 다시 채워집니다. 더 필요하면 관리자에게 "
                           "예산 조정을 요청하세요.")
        self.scope, self.kind = quota.scope, kind


class QuotaStore(Protocol):
    async def admit(self, quotas: list[Quota], period: Period, now: float) -> Standing:
        """Count one request against every quota, or raise BudgetExhausted (nothing counted)."""

    async def spend(self, scopes: list[str], period: Period, tokens: int, won: float) -> None: ...

    async def used(self, scopes: Iterable[str], period: Period) -> dict[str, dict[str, float]]: ...

    async def aclose(self) -> None: ...


def _over(limit: float, used: float, cost: float) -> bool:
    return bool(limit) and (used + cost > limit if cost else used >= limit)


class InProcessQuotas:
    def __init__(self):
        self._used: dict[tuple[str, str], dict[str, float]] = {}

    def _of(self, scope: str, period: Period) -> dict[str, float]:
        used = self._used.get((scope, period.id))
        if used is None:
            used = self._used[(scope, period.id)] = {"requests": 0, "tokens": 0, "won": 0.0}
        return used

    async def admit(self, quotas: list[Quota], period: Period, now: float) -> Standing:
        rows = [self._of(quota.scope, period) for quota in quotas]
        for quota, used in zip(quotas, rows, strict=True):
            for kind, limit in quota.limited:
                if _over(limit, used[kind], 1 if kind == "requests" else 0):
                    raise BudgetExhausted(quota, kind, period, now)
        for used in rows:
            used["requests"] += 1
        return Standing({quota.scope: dict(used) for quota, used in zip(quotas, rows, strict=True)}, quotas)

    async def spend(self, scopes: list[str], period: Period, tokens: int, won: float) -> None:
        for scope in scopes:
            used = self._of(scope, period)
            used["tokens"] += tokens
            used["won"] += won

    async def used(self, scopes: Iterable[str], period: Period) -> dict[str, dict[str, float]]:
        return {scope: dict(self._of(scope, period)) for scope in scopes}

    async def aclose(self) -> None:
        return None


# KEYS: one hash per quota (fields requests, tokens, mwon). ARGV: expire-at, n, then per quota
# its three limits (0 = unlimited; won in milli-won). Checks all, then counts the request in all.
# Returns {failed quota index (0 = admitted), failed kind index, then per quota the used values}.
_ADMIT_LUA = """
local expire_at = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {0, 0}
for i = 1, n do
  local used = redis.call('HMGET', KEYS[i], 'requests', 'tokens', 'mwon')
  for k = 1, 3 do
    local limit = tonumber(ARGV[2 + 3 * (i - 1) + k])
    local u = tonumber(used[k] or '0')
    local over = false
    if limit > 0 then
      if k == 1 then over = (u + 1 > limit) else over = (u >= limit) end
    end
    if over then return {i, k} end
    if k == 1 then u = u + 1 end
    table.insert(out, u)
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'requests', 1)
  redis.call('EXPIREAT', KEYS[i], expire_at)
end
return out
"""


class RedisQuotas:
    def __init__(self, url: str, prefix: str):
        import redis.asyncio as redis_async

        self._redis = redis_async.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT_LUA)

    def _key(self, scope: str, period: Period) -> str:
        return f"{self._prefix}:{scope}:{period.id}"

    @staticmethod
    def _keep_until(period: Period) -> int:
        return int(period.resets_at.timestamp()) + 40 * 86400  # figures stay readable a while

    async def admit(self, quotas: list[Quota], period: Period, now: float) -> Standing:
        args: list[float] = [self._keep_until(period), len(quotas)]
        for quota in quotas:
            args += [quota.requests, quota.tokens, round(quota.won * MILLI)]
        try:
            result = await self._admit(keys=[self._key(q.scope, period) for q in quotas], args=args)
        except Exception as exc:  # any Redis failure: refuse rather than spend unmetered
            raise _unavailable() from exc
        failed, kind = int(result[0]), int(result[1])
        if failed:
            raise BudgetExhausted(quotas[failed - 1], KINDS[kind - 1], period, now)
        values = [int(v) for v in result[2:]]
        return Standing({q.scope: _used(values[3 * i:3 * i + 3]) for i, q in enumerate(quotas)}, quotas)

    async def spend(self, scopes: list[str], period: Period, tokens: int, won: float) -> None:
        if not (tokens or won):
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for scope in scopes:
                    key = self._key(scope, period)
                    pipe.hincrby(key, "tokens", tokens)
                    pipe.hincrby(key, "mwon", round(won * MILLI))
                    pipe.expireat(key, self._keep_until(period))
                await pipe.execute()
        except Exception as exc:
            raise _unavailable() from exc

    async def used(self, scopes: Iterable[str], period: Period) -> dict[str, dict[str, float]]:
        scopes = list(scopes)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.hmget(self._key(scope, period), "requests", "tokens", "mwon")
                rows = await pipe.execute()
        except Exception as exc:
            raise _unavailable() from exc
        return {scope: _used([int(v or 0) for v in row]) for scope, row in zip(scopes, rows, strict=True)}

    async def aclose(self) -> None:
        await self._redis.aclose()


def _used(values: list[int]) -> dict[str, float]:
    return {"requests": values[0], "tokens": values[1], "won": values[2] / MILLI}


def _unavailable() -> LimiterUnavailable:
    return LimiterUnavailable("The shared budget counter (Redis) cannot be reached, so requests are refused "
                              "for safety. Ask the platform operator to check HANCHANG_REDIS_URL.")


def create_quota_store(redis_url: str | None, prefix: str = "hanchang") -> QuotaStore:
    return RedisQuotas(redis_url, f"{prefix}:budget") if redis_url else InProcessQuotas()


class BudgetPlan:
    """Who has which budget: the configuration, replaced by administrators' overrides."""

    def __init__(self, config: BudgetsConfig, load_overrides: Callable[[], list[Override]] | None = None,
                 refresh_s: float = 5.0, clock: Callable[[], float] = time.time):
        self.config = config
        self._load = load_overrides
        self._refresh_s = refresh_s
        self._clock = clock
        self._overrides: dict[str, Override] = {}
        self._loaded_at = float("-inf")
        self._period: Period | None = None
        self._period_day: tuple[float, date] | None = None  # (next midnight, today) in the zone
        self._quotas: dict[tuple[str, int, date], list[Quota]] = {}  # per caller, until a reload
        # No budget configured and no override: nothing to count (the embedded default).
        self.empty = config.per_agency.unlimited and config.per_user.unlimited and not any(
            not b.unlimited for b in config.agencies.values())

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def period(self, now: float) -> tuple[Period, date]:
        """The current period and today's date in the zone (computed again only after midnight)."""
        if self._period is None or self._period_day is None or now >= self._period_day[0]:
            self._period = current_period(self.config, now)
            zone = self._period.resets_at.tzinfo
            today = datetime.fromtimestamp(now, zone).date()
            midnight = datetime(today.year, today.month, today.day, tzinfo=zone) + timedelta(days=1)
            self._period_day = (midnight.timestamp(), today)
        return self._period, self._period_day[1]

    @property
    def stale(self) -> bool:
        return self._load is not None and self._clock() - self._loaded_at > self._refresh_s

    def reload(self) -> None:
        """Read the overrides again (blocking: call it from a thread)."""
        if self._load is not None:
            self._overrides = {o.scope: o for o in self._load()}
            self._quotas = {}
            self._loaded_at = self._clock()

    def limit(self, scope: str, configured: BudgetLimit, today: date) -> BudgetLimit:
        override = self._overrides.get(scope)
        if override is None or (override.until is not None and override.until < today):
            return configured
        return BudgetLimit(
            requests=configured.requests if override.requests is None else override.requests,
            tokens=configured.tokens if override.tokens is None else override.tokens,
            won=configured.won if override.won is None else override.won)

    def quotas(self, principal: Principal, today: date) -> list[Quota]:
        """The budgets a request of this caller spends from (the unlimited ones left out)."""
        if self.empty and not self._overrides:
            return []
        key = (principal.agency_code, principal.user_id, today)
        found = self._quotas.get(key)
        if found is None:
            if len(self._quotas) > 10_000:
                self._quotas.clear()
            found = self._quotas[key] = self._resolve(principal, today)
        return found

    def _resolve(self, principal: Principal, today: date) -> list[Quota]:
        agency = self.limit(f"agency:{principal.agency_code}",
                            self.config.agencies.get(principal.agency_code, self.config.per_agency), today)
        user = self.limit(f"user:{principal.user_id}", self.config.per_user, today)
        found = []
        if not agency.unlimited:
            found.append(Quota(f"agency:{principal.agency_code}", f"기관 {principal.agency_code}",
                               agency.requests, agency.tokens, agency.won))
        if not user.unlimited:
            found.append(Quota(f"user:{principal.user_id}", f"사용자 {principal.user_name}",
                               user.requests, user.tokens, user.won))
        return found
