"""Operations and governance: `/metrics` for Prometheus, and `/api/ops/*` for the operations page
(and any admin's script): figures over time, SLOs, budgets, feedback review, the KPI report.

An agency admin sees their own agency only; a platform admin every agency (or one, `agency=`).
"""

from __future__ import annotations

import hmac
import os
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hanchang.audit import metrics
from hanchang.core.errors import NotAllowed
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse, download_headers
from hanchang.http.types import DbId
from hanchang.ops import budgets, feedback_review, kpi, slo
from hanchang.ops.overview import Range, overview

router = APIRouter()


# -- /metrics ---------------------------------------------------------------------------------
@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request):
    """Prometheus text format. A scraper sends the metrics token (`metrics.token_env`), or a platform
    admin's API key."""
    settings = platform_of(request).settings
    token = os.environ.get(settings.metrics.token_env, "")
    sent = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not (token and sent and hmac.compare_digest(sent.encode(), token.encode())):
        principal = await require_principal(request)
        if not can(principal, SEE_EVERY_AGENCY):
            raise NotAllowed("지표는 플랫폼 관리자 키나 지표 토큰으로만 볼 수 있습니다.",
                             f"/metrics needs a platform admin's key or the token in {settings.metrics.token_env}")
    body, content_type = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=content_type, headers={"cache-control": "no-store"})


# -- scope ------------------------------------------------------------------------------------
def _agency(principal: Principal, agency: str | None) -> str | None:
    """The agency whose figures the caller asked for and may see; None = every agency."""
    require(principal, "operations.read")
    if can(principal, SEE_EVERY_AGENCY):
        return agency or None
    if agency not in (None, "", principal.agency_code):
        raise NotAllowed("다른 기관의 운영 현황은 볼 수 없습니다.", "agency admins see their own agency only")
    return principal.agency_code


@router.get("/api/ops/overview")
async def ops_overview(request: Request, start: date | None = None, end: date | None = None,
                       agency: str | None = None, principal: Principal = Depends(require_principal)):
    """Figures over time for the operations page (`start`/`end` are calendar days, inclusive)."""
    scope = _agency(principal, agency)
    settings = platform_of(request).settings
    last = end or datetime.now(ZoneInfo(settings.budgets.timezone)).date()
    span = Range.of_days(start or last - timedelta(days=13), last, settings.budgets.timezone)
    lines = {"qa": settings.slo.qa_seconds, "inference": settings.slo.inference_seconds}
    data = await run_in_threadpool(overview, platform_of(request).db, span, scope, lines)
    return JSONResponse({**data, "agency": scope})


@router.get("/api/ops/slo")
async def ops_slo(request: Request, window: Literal["day", "week", "month"] = "month", agency: str | None = None,
                  principal: Principal = Depends(require_principal)):
    scope = _agency(principal, agency)
    platform = platform_of(request)
    report = await run_in_threadpool(slo.measure, platform.db, platform.settings.slo, window, agency=scope)
    return JSONResponse({**report.as_dict(), "agency": scope,
                         "targets": platform.settings.slo.model_dump()})


# -- budgets ----------------------------------------------------------------------------------
class BudgetChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    won: float | None = Field(default=None, ge=0)
    until: date | None = None
    note: str = Field(default="", max_length=1000)


@router.get("/api/ops/budgets")
async def ops_budgets(request: Request, agency: str | None = None,
                      principal: Principal = Depends(require_principal)):
    scope = _agency(principal, agency)
    gateway = platform_of(request).gateway
    return JSONResponse(await budgets.standing(platform_of(request).db, gateway.budget_plan, gateway.quota_store,
                                               principal, scope))


@router.put("/api/ops/budgets/{scope}")
async def change_budget(scope: str, body: BudgetChange, request: Request,
                        principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return budgets.set_override(session, principal, scope, requests=body.requests, tokens=body.tokens,
                                        won=body.won, until=body.until, note=body.note)
    result = await run_in_threadpool(work)
    platform_of(request).gateway.budget_plan.invalidate()
    return JSONResponse(result)


@router.delete("/api/ops/budgets/{scope}", status_code=204)
async def clear_budget(scope: str, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            budgets.clear_override(session, principal, scope)
    await run_in_threadpool(work)
    platform_of(request).gateway.budget_plan.invalidate()
    return Response(status_code=204)


# -- feedback review --------------------------------------------------------------------------
class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "resolved", "knowledge_gap", "model_error"]
    expected_answer: str | None = Field(default=None, max_length=20_000)


@router.get("/api/ops/feedback")
async def feedback_list(request: Request, status: str | None = None, rating: int | None = -1,
                        agency: str | None = None, principal: Principal = Depends(require_principal)):
    scope = _agency(principal, agency)

    def work():
        with platform_of(request).db.session() as session:
            return feedback_review.listing(session, principal, status=status or None, rating=rating, agency=scope)
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/api/ops/feedback/{feedback_id}/review")
async def feedback_mark(feedback_id: DbId, body: Review, request: Request,
                        principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return feedback_review.review(session, principal, feedback_id, body.status, body.expected_answer)
    return JSONResponse(await run_in_threadpool(work))


@router.get("/api/ops/feedback/export")
async def feedback_export(request: Request, status: str | None = None, rating: int | None = -1,
                          agency: str | None = None, principal: Principal = Depends(require_principal)):
    """The reviewed answers as a JSONL evaluation set (personal data masked, grades kept)."""
    scope = _agency(principal, agency)

    def work() -> list[bytes]:
        with platform_of(request).db.session() as session:
            return list(feedback_review.evaluation_lines(session, principal, status=status or None,
                                                         rating=rating, agency=scope))
    lines = await run_in_threadpool(work)
    today = datetime.now(ZoneInfo(platform_of(request).settings.budgets.timezone)).date()
    name = f"hanchang-feedback-{scope or 'all'}-{today:%Y%m%d}.jsonl"
    return StreamingResponse(iter(lines), media_type="application/x-ndjson",
                             headers=download_headers(name))


# -- the KPI report ---------------------------------------------------------------------------
@router.get("/api/ops/report")
async def kpi_report(request: Request, period: str | None = None, agency: str | None = None,
                     format: Literal["xlsx", "hwpx", "csv", "json"] = "xlsx",
                     principal: Principal = Depends(require_principal)):
    scope = _agency(principal, agency)
    settings = platform_of(request).settings
    month = period or kpi.last_month(settings.budgets.timezone)
    report = await run_in_threadpool(kpi.build, platform_of(request).db, settings, month, scope)
    if format == "json":
        return JSONResponse({"title": report.title, "period": report.period, "agency": report.agency,
                             "indicators": [i.__dict__ for i in report.indicators]})
    write, media_type = kpi.WRITERS[format]
    body = await run_in_threadpool(write, report)
    return Response(body, media_type=media_type,
                    headers=download_headers(f"hanchang-kpi-{scope or 'all'}-{month}.{format}"))

