"""/api/audit: the auditor role reads the trail (its own agency's; platform admins all).

Read-only by design: there is no route that edits or deletes a record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from hanchang.audit import trail
from hanchang.audit.checkpoints import CheckpointBook
from hanchang.core.errors import NotAllowed
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse

router = APIRouter(prefix="/api/audit")
MAX_RECORDS = 5000


def _scope(principal: Principal) -> str | None:
    """The agency whose records the caller may read; None means all agencies."""
    require(principal, "audit.read")
    return None if can(principal, SEE_EVERY_AGENCY) else principal.agency_code


@router.get("/records")
async def records(request: Request, since: datetime | None = None, agency: str | None = None,
                  principal: Principal = Depends(require_principal)):
    scope = _scope(principal)
    if scope is not None and agency not in (None, scope):
        raise NotAllowed("다른 기관의 감사 기록은 볼 수 없습니다.", "auditors read their own agency only")
    start = since or datetime.now(UTC) - timedelta(days=30)

    def work():
        with platform_of(request).db.session() as session:
            rows = []
            for row in trail.export_rows(session, start, scope or agency):
                rows.append(row)
                if len(rows) >= MAX_RECORDS:
                    break
            return rows
    return JSONResponse({"data": await run_in_threadpool(work), "limit": MAX_RECORDS})


@router.get("/verify")
async def verify(request: Request, principal: Principal = Depends(require_principal)):
    _scope(principal)

    def work():
        with platform_of(request).db.session() as session:
            result = trail.verify(session)
            cut = CheckpointBook(platform_of(request).settings.home).check(session)
        if result.ok and cut:
            return trail.VerifyResult(False, result.checked, None, cut)
        return result
    result = await run_in_threadpool(work)
    if _scope(principal) is not None:  # an agency's auditor learns whether the chain holds, not its size
        return JSONResponse({"ok": result.ok, "problem": "" if result.ok else "the audit chain is broken; "
                             "ask the platform administrator to run 'hanchang audit verify'"})
    return JSONResponse({"ok": result.ok, "checked": result.checked, "broken_id": result.broken_id,
                         "problem": result.problem})
