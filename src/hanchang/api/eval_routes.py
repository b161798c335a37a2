"""/v1/evals: OpenAI's Evals API over Hanchang's harness, and /api/eval-datasets for the sets.

The openai SDK's `client.evals.create`, `.retrieve`, `.update`, `.list`, `.delete`, and
`client.evals.runs.create`, `.retrieve`, `.list`, `.cancel`, `.delete`, `.output_items.list`
and `.retrieve` work unchanged. Hanchang adds a data source of a stored set
(`{"type": "dataset", "name": "sample-dev"}`), `collections` to ground a target, the set's grade
(`data_grade`), and `GET /v1/evals/runs/{a}/compare/{b}`: the paired comparison.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from hanchang.api.route_helpers import in_session as _in_session
from hanchang.api.route_helpers import json_body as _body
from hanchang.api.route_helpers import page as _page
from hanchang.core.errors import InvalidInput, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.evals import compare as paired
from hanchang.evals import datasets, results, runs
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse

router = APIRouter()
MAX_SET_BYTES = 20 * 1024 * 1024


# -- evals ------------------------------------------------------------------------------------
@router.post("/v1/evals")
async def create_eval(request: Request, principal: Principal = Depends(require_principal)):
    body = await _body(request)
    platform = platform_of(request)
    return await _in_session(platform, lambda s: runs.describe_eval(runs.create_eval(
        s, principal, body.get("name"), body.get("data_source_config"), body.get("testing_criteria"),
        body.get("metadata"))))


@router.get("/v1/evals")
async def list_evals(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None,
                     principal: Principal = Depends(require_principal)):
    def work(session):
        found = runs.list_evals(session, principal, limit + 1, after)
        return _page([runs.describe_eval(r) for r in found[:limit]], len(found) > limit)
    return await _in_session(platform_of(request), work)


@router.get("/v1/evals/{eval_id}")
async def get_eval(eval_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request),
                             lambda s: runs.describe_eval(runs.get_eval(s, principal, eval_id)))


@router.post("/v1/evals/{eval_id}")
async def update_eval(eval_id: str, request: Request, principal: Principal = Depends(require_principal)):
    body = await _body(request)
    return await _in_session(platform_of(request), lambda s: runs.describe_eval(runs.update_eval(
        s, principal, runs.get_eval(s, principal, eval_id), body.get("name"), body.get("metadata"))))


@router.delete("/v1/evals/{eval_id}")
async def delete_eval(eval_id: str, request: Request, principal: Principal = Depends(require_principal)):
    def work(session):
        runs.delete_eval(session, principal, runs.get_eval(session, principal, eval_id))
        return {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}
    return await _in_session(platform_of(request), work)


# -- runs -------------------------------------------------------------------------------------
@router.post("/v1/evals/{eval_id}/runs")
async def create_run(eval_id: str, request: Request, principal: Principal = Depends(require_principal)):
    body = await _body(request)
    platform = platform_of(request)
    run = await run_in_threadpool(runs.create_run, platform, principal, eval_id, body.get("name"),
                                  body.get("data_source"), body.get("metadata"))
    if platform.eval_runs is not None:
        platform.eval_runs.wake()
    return await _in_session(platform, lambda s: results.describe_run(s, runs.find_run(s, principal, run.id)))


@router.get("/v1/evals/{eval_id}/runs")
async def list_runs(eval_id: str, request: Request, limit: int = Query(20, ge=1, le=100),
                    status: str | None = None, principal: Principal = Depends(require_principal)):
    def work(session):
        runs.get_eval(session, principal, eval_id)
        found = runs.list_runs(session, principal, eval_id, limit + 1, status)
        return _page([results.describe_run(session, r) for r in found[:limit]], len(found) > limit)
    return await _in_session(platform_of(request), work)


@router.get("/v1/evals/{eval_id}/runs/{run_id}")
async def get_run(eval_id: str, run_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request),
                             lambda s: results.describe_run(s, runs.get_run(s, principal, eval_id, run_id)))


@router.post("/v1/evals/{eval_id}/runs/{run_id}")
async def cancel_run(eval_id: str, run_id: str, request: Request, principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request), lambda s: results.describe_run(
        s, runs.cancel_run(s, principal, runs.get_run(s, principal, eval_id, run_id))))


@router.delete("/v1/evals/{eval_id}/runs/{run_id}")
async def delete_run(eval_id: str, run_id: str, request: Request, principal: Principal = Depends(require_principal)):
    def work(session):
        runs.delete_run(session, principal, runs.get_run(session, principal, eval_id, run_id))
        return {"object": "eval.run.deleted", "deleted": True, "run_id": run_id}
    return await _in_session(platform_of(request), work)


@router.get("/v1/evals/{eval_id}/runs/{run_id}/output_items")
async def list_output_items(eval_id: str, run_id: str, request: Request, limit: int = Query(20, ge=1, le=100),
                            after: str | None = None, status: str | None = Query(None, pattern="^(pass|fail|error)$"),
                            principal: Principal = Depends(require_principal)):
    def work(session):
        run = runs.get_run(session, principal, eval_id, run_id)
        found = results.output_items(session, run, status, limit + 1, after)
        return _page([results.describe_item(run, r) for r in found[:limit]], len(found) > limit)
    return await _in_session(platform_of(request), work)


@router.get("/v1/evals/{eval_id}/runs/{run_id}/output_items/{item_id}")
async def get_output_item(eval_id: str, run_id: str, item_id: str, request: Request,
                          principal: Principal = Depends(require_principal)):
    def work(session):
        run = runs.get_run(session, principal, eval_id, run_id)
        for row in results.output_items(session, run):
            if row.id == item_id:
                return results.describe_item(run, row)
        raise NotFound(f"출력 항목 '{item_id}'가 없습니다.", f"no output item '{item_id}'")
    return await _in_session(platform_of(request), work)


@router.get("/v1/evals/runs/{base_id}/compare/{other_id}")
async def compare_runs(base_id: str, other_id: str, request: Request,
                       principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request), lambda s: paired.compare(
        s, runs.find_run(s, principal, base_id), runs.find_run(s, principal, other_id)))


@router.get("/api/eval-runs")
async def list_every_run(request: Request, limit: int = Query(20, ge=1, le=100),
                         principal: Principal = Depends(require_principal)):
    """The agency's runs across its evals, newest first (the window's 평가 page)."""
    return await _in_session(platform_of(request), lambda s: {"object": "list", "data": [
        results.describe_run(s, r) for r in runs.list_runs(s, principal, None, limit)]})


# -- evaluation sets ----------------------------------------------------------------------------
@router.get("/api/eval-datasets")
async def list_sets(request: Request, principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request), lambda s: {"object": "list", "data": [
        datasets.describe(r) for r in datasets.list_sets(s, principal)], "shipped": list(datasets.SHIPPED)})


@router.get("/api/eval-datasets/{name}")
async def get_set(name: str, request: Request, version: int | None = Query(None, ge=1),
                  principal: Principal = Depends(require_principal)):
    return await _in_session(platform_of(request), lambda s: datasets.describe(
        datasets.get(s, principal, name, version), with_items=True))


@router.post("/api/eval-datasets")
async def upload_set(request: Request, file: UploadFile, name: str | None = None, grade: str = "O",
                     format: str = Query("jsonl", pattern="^(jsonl|korquad)$"), limit: int | None = Query(None, ge=1),
                     principal: Principal = Depends(require_principal)):
    """A JSONL set (or a KorQuAD file) as a new version of the agency's set `name`."""
    require(principal, "evals.run")
    raw = await file.read(MAX_SET_BYTES + 1)
    if len(raw) > MAX_SET_BYTES:
        raise InvalidInput("평가 세트 파일은 20MB까지입니다.", "an evaluation set file is at most 20 MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("평가 세트는 UTF-8 텍스트여야 합니다.", "the set must be UTF-8 text") from None
    if format == "korquad":
        try:
            items = datasets.from_korquad(json.loads(text), limit)
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("KorQuAD 1.0 JSON 파일이 아닙니다.", "not a KorQuAD 1.0 JSON file") from None
    else:
        items = datasets.parse_jsonl(text)
    try:
        level = Grade.parse(grade)
    except ValueError:
        raise InvalidInput("grade는 C, S, O 중 하나입니다.", "grade must be C, S or O") from None
    label = name or (file.filename or "set").rsplit(".", 1)[0]
    row = await _in_session(platform_of(request), lambda s: datasets.describe(
        datasets.save(s, principal, label, items, level, source=file.filename)))
    return JSONResponse(row, status_code=201)
