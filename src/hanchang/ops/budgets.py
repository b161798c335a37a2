"""Budgets as administrators see and change them: what each agency (and user) may spend this
period, what it has spent, and overrides — each change audited in the same transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hanchang.audit.trail import admin_entry as audit_admin_entry
from hanchang.audit.trail import append, record_by
from hanchang.config import BudgetLimit
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.gateway.quotas import KINDS, BudgetPlan, Override, QuotaStore, current_period
from hanchang.store import changes
from hanchang.store.db import Database
from hanchang.store.tables import Agency, BudgetOverride, User, utcnow


def overrides_loader(db: Database) -> Callable[[], list[Override]]:
    def load() -> list[Override]:
        with db.session() as session:
            return [Override(o.scope, o.requests, o.tokens, o.won, o.until)
                    for o in session.scalars(select(BudgetOverride))]
    return load


@dataclass(frozen=True)
class Target:
    """What a budget scope names: an agency, or a user of an agency."""

    scope: str
    agency_id: int
    agency_code: str
    label_ko: str


def resolve(session: Session, scope: str) -> Target:
    kind, _, ref = scope.partition(":")
    if kind == "agency":
        agency = session.scalar(select(Agency).where(Agency.code == ref))
        if agency is not None:
            return Target(scope, agency.id, agency.code, f"기관 {agency.code}")
    elif kind == "user" and ref.isdigit():
        user = session.get(User, int(ref))
        if user is not None:
            return Target(scope, user.agency_id, user.agency.code, f"사용자 {user.name} ({user.agency.code})")
    raise NotFound("예산 대상을 찾을 수 없습니다. agency:기관코드 또는 user:사용자번호로 지정하세요.",
                   f"no budget scope {scope!r}: use agency:CODE or user:ID")


def _require_change(principal: Principal, target: Target) -> None:
    # Agency budgets are set by platform admins; a user's budget also by their agency's admin.
    action = "budgets.agency" if target.scope.startswith("agency:") else "budgets.user"
    require(principal, action, target)


def set_override(session: Session, actor: Principal | str, scope: str, *, requests: int | None = None,
                 tokens: int | None = None, won: float | None = None, until: date | None = None,
                 note: str = "") -> dict[str, Any]:
    """Replace a scope's configured budget (None keeps the configured value; 0 = unlimited)."""
    for name, value in (("requests", requests), ("tokens", tokens), ("won", won)):
        if value is not None and value < 0:
            raise InvalidInput("예산은 0 이상이어야 합니다 (0은 무제한).", f"{name} must be >= 0 (0 = unlimited)",
                               param=name)
    if requests is None and tokens is None and won is None:
        raise InvalidInput("바꿀 예산(requests, tokens, won) 중 하나 이상을 주세요.",
                           "give at least one of requests, tokens, won", param="requests")
    target = resolve(session, scope)
    if isinstance(actor, Principal):
        _require_change(actor, target)
    row = session.scalar(select(BudgetOverride).where(BudgetOverride.scope == scope))
    if row is None:
        row = BudgetOverride(scope=scope)
        session.add(row)
    row.requests, row.tokens, row.won, row.until = requests, tokens, won, until
    row.note, row.updated_at = note[:1000], utcnow()
    row.set_by = actor.user_name if isinstance(actor, Principal) else actor
    detail = {"scope": scope, "requests": requests, "tokens": tokens, "won": won,
              "until": until.isoformat() if until else None, "note": note[:200]}
    _audit(session, actor, "budget.override", target, detail)
    changes.announce(session, changes.BUDGETS)
    return detail


def clear_override(session: Session, actor: Principal | str, scope: str) -> None:
    target = resolve(session, scope)
    if isinstance(actor, Principal):
        _require_change(actor, target)
    if session.execute(delete(BudgetOverride).where(BudgetOverride.scope == scope)).rowcount == 0:
        raise NotFound("이 대상에는 조정된 예산이 없습니다.", f"no override for {scope}")
    _audit(session, actor, "budget.override_cleared", target, {"scope": scope})
    changes.announce(session, changes.BUDGETS)


def _audit(session: Session, actor: Principal | str, action: str, target: Target, detail: dict) -> None:
    if isinstance(actor, Principal):
        record_by(session, actor, action, detail)
    else:
        append(session, [audit_admin_entry(action, actor, target.agency_code, detail)])


@dataclass(frozen=True)
class BudgetRow:
    scope: str
    label_ko: str
    agency_code: str
    limits: dict[str, float]
    used: dict[str, float]
    overridden: bool

    def share(self, kind: str) -> float | None:
        limit = self.limits[kind]
        return self.used[kind] / limit if limit else None

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "label": self.label_ko, "agency": self.agency_code, "limits": self.limits,
                "used": self.used, "overridden": self.overridden,
                "share": {k: (round(s, 4) if (s := self.share(k)) is not None else None) for k in KINDS}}


async def standing(db: Database, plan: BudgetPlan, store: QuotaStore, principal: Principal | None,
                   agency: str | None = None) -> dict[str, Any]:
    """This period's budgets and spending for the agencies the caller may see (and their users
    with their own budget or an override). `principal` None: the operator's CLI, every agency."""
    import asyncio

    now = time.time()
    period = current_period(plan.config, now)
    today = datetime.fromtimestamp(now, period.resets_at.tzinfo).date()

    def targets() -> tuple[list[Target], set[str]]:
        with db.session() as session:
            query = select(Agency).order_by(Agency.code)
            if principal is not None and not can(principal, SEE_EVERY_AGENCY):
                query = query.where(Agency.id == principal.agency_id)
            elif agency:
                query = query.where(Agency.code == agency)
            agencies = list(session.scalars(query))
            found = [Target(f"agency:{a.code}", a.id, a.code, f"기관 {a.code}") for a in agencies]
            overridden = set(session.scalars(select(BudgetOverride.scope)))
            user_scopes = [s for s in overridden if s.startswith("user:")]
            if not plan.config.per_user.unlimited:  # every user of the agencies shown has one
                users = session.scalars(select(User).where(User.agency_id.in_([a.id for a in agencies])))
                user_scopes += [f"user:{u.id}" for u in users]
            for scope in dict.fromkeys(user_scopes):
                target = resolve(session, scope)
                if target.agency_id in {a.id for a in agencies}:
                    found.append(target)
            return found, overridden

    if plan.stale:
        await asyncio.to_thread(plan.reload)
    found, overridden = await asyncio.to_thread(targets)
    used = await store.used([t.scope for t in found], period)
    rows = []
    for target in found:
        configured = (plan.config.agencies.get(target.agency_code, plan.config.per_agency)
                      if target.scope.startswith("agency:") else plan.config.per_user)
        limit: BudgetLimit = plan.limit(target.scope, configured, today)
        rows.append(BudgetRow(target.scope, target.label_ko, target.agency_code,
                              {"requests": limit.requests, "tokens": limit.tokens, "won": limit.won},
                              used[target.scope], target.scope in overridden))
    return {"period": period.id, "resets_at": period.resets_at.isoformat(), "warn_at": plan.config.warn_at,
            "data": [r.as_dict() for r in rows]}
