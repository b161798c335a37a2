"""`GET /readyz`: can this server answer now? Database, limiter, and each model."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from hanchang.gateway.engine.supervisor import brief
from hanchang.gateway.probe import USABLE_STATES
from hanchang.gateway.router import Gateway
from hanchang.store.db import Database


def _database_answers(db: Database) -> bool:
    try:
        with db.session() as session:
            session.execute(text("select 1"))
        return True
    except Exception:  # any failure to answer means not ready
        return False


async def readiness(db: Database, gateway: Gateway) -> dict[str, Any]:
    database, limiter, *models = await asyncio.gather(
        run_in_threadpool(_database_answers, db), gateway.limiter.ping(),
        *(gateway.model_status(spec) for spec in gateway.registry.configured))
    default = gateway.registry.default_model
    default_usable = any(m.get("name") == default and m.get("state") in USABLE_STATES for m in models)
    shown = ("name", "kind", "state", "restarts", "last_problem", "detail",
             "prefill_tokens_per_s", "decode_tokens_per_s", "pending")
    for m in models:  # unauthenticated: what happened in a few words, never log lines or paths
        m["last_problem"] = brief(m.get("last_problem"))
    return {
        "ready": database and limiter and (default is None or default_usable),
        "database": "ok" if database else "unavailable",
        "limiter": "ok" if limiter else "unavailable",
        "models": [{k: m.get(k) for k in shown if m.get(k) is not None} for m in models],
    }
