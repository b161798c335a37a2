"""/v1/files (purpose fine-tune) and /v1/fine_tuning/jobs in OpenAI's shapes, and /api/training
for what OpenAI has no door for (datasets from feedback or a collection, the eval gate, rollback).

The openai SDK's `files.create(purpose="fine-tune")`, `files.list/retrieve/delete`, and
`fine_tuning.jobs.create/list/retrieve/cancel/list_events`, `jobs.checkpoints.list` work
unchanged. A training file's grade is the form field `grade` (C, S or O); without it the file is
treated as S (민감), the safe side for data an agency trains on.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from hanchang.api.route_helpers import in_session, json_body, page
from hanchang.core.errors import InvalidInput
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse
from hanchang.training import datasets, jobs, sources
from hanchang.training import models as trained

router = APIRouter()
DEFAULT_UPLOAD_GRADE = "S"


def _grade(value: str | None, default: str) -> Grade:
    try:
        return Grade.parse(value or default)
    except ValueError:
        raise InvalidInput("grade는 C, S, O 중 하나입니다.", "grade must be C, S or O", param="grade") from None


# -- files ------------------------------------------------------------------------------------
@router.post("/v1/files")
async def upload_file(request: Request, file: UploadFile, purpose: str = Form(...), grade: str | None = Form(None),
                      holdout: float = Form(datasets.DEFAULT_HOLDOUT), seed: int = Form(0),
                      principal: Principal = Depends(require_principal)):
    if purpose != "fine-tune":
        raise InvalidInput(f"purpose '{purpose}'는 지원하지 않습니다. 파인튜닝 학습 파일은 purpose='fine-tune'입니다.",
                           f"purpose '{purpose}' is not supported here; use 'fine-tune'", param="purpose")
    require(principal, "training.manage")
    raw = await file.read(datasets.MAX_BYTES + 1)
    examples = await run_in_threadpool(datasets.parse_jsonl, raw)
    name = (file.filename or "training").rsplit("/", 1)[-1].rsplit(".", 1)[0][:100] or "training"
    level = _grade(grade, DEFAULT_UPLOAD_GRADE)
    row = await in_session(platform_of(request), lambda s: datasets.describe(datasets.save(
        s, principal, name, examples, level, f"upload:{file.filename}"[:300], holdout=holdout, seed=seed)))
    return JSONResponse(row)


@router.get("/v1/files")
async def list_files(request: Request, purpose: str | None = None, principal: Principal = Depends(require_principal)):
    def work(session):
        found = [] if purpose not in (None, "fine-tune") else datasets.list_datasets(session, principal)
        return {"object": "list", "data": [datasets.describe(r) for r in found], "has_more": False}
    return await in_session(platform_of(request), work)


@router.get("/v1/files/{file_id}")
async def get_file(file_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await in_session(platform_of(request), lambda s: datasets.describe(datasets.get(s, principal, file_id)))


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request, principal: Principal = Depends(require_principal)):
    def work(session):
        datasets.delete(session, principal, datasets.get(session, principal, file_id))
        return {"id": file_id, "object": "file", "deleted": True}
    return await in_session(platform_of(request), work)


# -- fine-tuning jobs -------------------------------------------------------------------------
def _method_hyperparameters(body: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI's `hyperparameters`, or the newer `method.supervised.hyperparameters`."""
    method = body.get("method") or {}
    if method and method.get("type", "supervised") != "supervised":
        raise InvalidInput("지도 학습(supervised)만 지원합니다.", "only the supervised method is supported",
                           param="method.type")
    return body.get("hyperparameters") or (method.get("supervised") or {}).get("hyperparameters")


@router.post("/v1/fine_tuning/jobs")
async def create_job(request: Request, principal: Principal = Depends(require_principal)):
    body = await json_body(request)
    platform = platform_of(request)
    if not isinstance(body.get("model"), str) or not isinstance(body.get("training_file"), str):
        raise InvalidInput("model과 training_file이 필요합니다.", "model and training_file are required")
    spec = platform.gateway.registry.get(body["model"])
    return await in_session(platform, lambda s: jobs.describe(s, jobs.create(
        s, principal, spec, body["training_file"], body.get("validation_file"), _method_hyperparameters(body),
        body.get("seed"), body.get("suffix"), body.get("metadata"))))


@router.get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None,
                    principal: Principal = Depends(require_principal)):
    def work(session):
        found = jobs.list_jobs(session, principal, after, limit + 1)
        return page([jobs.describe(session, j) for j in found[:limit]], len(found) > limit)
    return await in_session(platform_of(request), work)


@router.get("/v1/fine_tuning/jobs/{job_id}")
async def get_job(job_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await in_session(platform_of(request), lambda s: jobs.describe(s, jobs.get(s, principal, job_id)))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await in_session(platform_of(request), lambda s: jobs.describe(
        s, jobs.cancel(s, principal, jobs.get(s, principal, job_id))))


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, limit: int = Query(20, ge=1, le=1000), after: str | None = None,
                     principal: Principal = Depends(require_principal)):
    def work(session):
        found = jobs.events(session, jobs.get(session, principal, job_id), after, limit + 1)
        return page([jobs.describe_event(e) for e in found[:limit]], len(found) > limit)
    return await in_session(platform_of(request), work)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
async def job_checkpoints(job_id: str, request: Request, limit: int = Query(10, ge=1, le=100),
                          principal: Principal = Depends(require_principal)):
    def work(session):
        job = jobs.get(session, principal, job_id)
        found = jobs.checkpoints(session, job, limit + 1)
        return page([jobs.describe_checkpoint(c, job) for c in found[:limit]], len(found) > limit)
    return await in_session(platform_of(request), work)


# -- Hanchang's own: datasets from the window or a collection, the gate, rollback --------------
@router.post("/api/training/datasets")
async def build_dataset(request: Request, principal: Principal = Depends(require_principal)):
    """`{"name", "source": "feedback"}` or `{"name", "source": "collection", "collection", "teacher",
    "passages", "per_passage"}`; `holdout` and `seed` for the split."""
    body = await json_body(request)
    platform = platform_of(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidInput("name이 필요합니다.", "name is required", param="name")
    if body.get("source") == "feedback":
        built = await in_session(platform, lambda s: sources.from_feedback(s, principal))
    elif body.get("source") == "collection":
        built = await sources.from_collection(platform, principal, str(body.get("collection") or ""),
                                              str(body.get("teacher") or "local"),
                                              passages_limit=int(body.get("passages") or 40),
                                              per_passage=int(body.get("per_passage") or 2),
                                              seed=int(body.get("seed") or 0))
    else:
        raise InvalidInput("source는 feedback 또는 collection입니다(파일은 /v1/files로 올리세요).",
                           "source is feedback or collection (upload files to /v1/files)", param="source")
    row = await in_session(platform, lambda s: datasets.describe(datasets.save(
        s, principal, name, built.examples, built.grade, built.source,
        holdout=float(body.get("holdout", datasets.DEFAULT_HOLDOUT)), seed=int(body.get("seed") or 0))))
    return JSONResponse({**row, "skipped": built.skipped}, status_code=201)


@router.get("/api/training/models")
async def list_models(request: Request, principal: Principal = Depends(require_principal)):
    return await in_session(platform_of(request), lambda s: {"object": "list", "data": [
        trained.describe(m) for m in trained.list_models(s, principal)]})


@router.post("/api/training/models/{model_id:path}/gate")
async def gate_model(model_id: str, request: Request, principal: Principal = Depends(require_principal)):
    """Run the eval gate now (minutes on the embedded model) and promote or reject the model."""
    return await trained.gate(platform_of(request), principal, model_id)


@router.post("/api/training/models/{model_id:path}/promote")
async def promote_model(model_id: str, request: Request, principal: Principal = Depends(require_principal)):
    """Serve a model against (or without) the gate's verdict: `{"reason": "…"}`, kept in the audit trail."""
    body = await json_body(request)
    platform = platform_of(request)
    found = await in_session(platform, lambda s: trained.describe(trained.promote_by_hand(
        s, principal, trained.get(s, principal, model_id), str(body.get("reason") or ""))))
    platform.gateway.registry.refresh(force=True)
    return found


@router.post("/api/training/models/{model_id:path}/rollback")
async def rollback_model(model_id: str, request: Request, principal: Principal = Depends(require_principal)):
    platform = platform_of(request)
    found = await in_session(platform, lambda s: trained.describe(
        trained.rollback(s, principal, trained.get(s, principal, model_id))))
    platform.gateway.registry.refresh(force=True)
    return found
