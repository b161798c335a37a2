"""Shared AI assets over HTTP: agents, prompt snippets, the common library, import/export,
and the adoption checklist (guideline 3.3). The window's pages use these; so can any script.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hanchang.assist import agents, asset_documents, asset_library, prompts
from hanchang.audit import trail
from hanchang.core.errors import InvalidInput, NotAllowed, NotFound
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse, download_headers
from hanchang.http.types import DbId
from hanchang.ops import checklist
from hanchang.store.tables import Agency

router = APIRouter(prefix="/api")
T = TypeVar("T")


async def _in_session(request: Request, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with platform_of(request).db.session() as session:
            return work(session)
    return await run_in_threadpool(run)



# -- agents -----------------------------------------------------------------------------------
class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    instructions: str = Field(min_length=1, max_length=8000)
    description: str = Field(default="", max_length=2000)
    collections: list[int | str] = Field(default_factory=list, max_length=agents.MAX_LIST)
    services: list[str] = Field(default_factory=list, max_length=agents.MAX_LIST)
    connectors: list[str] = Field(default_factory=list, max_length=agents.MAX_LIST)
    model: str | None = Field(default=None, max_length=200)
    examples: list[str] = Field(default_factory=list, max_length=agents.MAX_EXAMPLES)


def _spec(request: Request, body: AgentIn) -> agents.AgentSpec:
    """The agent as sent, its model and services checked against what this platform has."""
    platform = platform_of(request)
    if body.model:
        canonical = platform.gateway.registry.canonical(body.model)
        if canonical is None or agents.is_ref(body.model):
            chat = ", ".join(s.name for s in platform.gateway.registry.configured if s.kind == "chat")
            raise InvalidInput(f"모델 '{body.model}'은(는) 없습니다. 쓸 수 있는 모델: {chat}",
                               f"unknown model '{body.model}'")
        body.model = canonical
    unknown = [s for s in body.services if s not in platform.services]
    if unknown:
        raise InvalidInput(f"없는 서비스입니다: {', '.join(unknown)}. "
                           f"쓸 수 있는 서비스: {', '.join(platform.services)}",
                           f"unknown services: {', '.join(unknown)}")
    return agents.AgentSpec(**body.model_dump())


@router.get("/agents")
async def list_agents(request: Request, principal: Principal = Depends(require_principal)):
    found = await _in_session(request, lambda s: agents.list_usable(s, principal))
    return JSONResponse({"data": [d.describe() for d in found]})


@router.post("/agents", status_code=201)
async def create_agent(body: AgentIn, request: Request, principal: Principal = Depends(require_principal)):
    spec = _spec(request, body)
    made = await _in_session(request, lambda s: agents.create(s, principal, spec))
    return JSONResponse(made.describe(), status_code=201)


@router.get("/agents/{agent_id}")
async def get_agent(agent_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    return JSONResponse((await _in_session(request, lambda s: agents.usable(s, principal, agent_id))).describe())


@router.put("/agents/{agent_id}")
async def update_agent(agent_id: DbId, body: AgentIn, request: Request,
                       principal: Principal = Depends(require_principal)):
    spec = _spec(request, body)
    return JSONResponse((await _in_session(request, lambda s: agents.update(s, principal, agent_id, spec)))
                        .describe())


@router.delete("/agents/{agent_id}", status_code=204)
async def delete_agent(agent_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    await _in_session(request, lambda s: agents.delete(s, principal, agent_id))
    return Response(status_code=204)


# -- prompt snippets --------------------------------------------------------------------------
class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=8000)


@router.get("/prompts")
async def list_prompts(request: Request, principal: Principal = Depends(require_principal)):
    rows = await _in_session(request, lambda s: [prompts.describe(r) for r in prompts.for_agency(s, principal)])
    return JSONResponse({"data": rows})


@router.post("/prompts", status_code=201)
async def create_prompt(body: PromptIn, request: Request, principal: Principal = Depends(require_principal)):
    made = await _in_session(request, lambda s: prompts.describe(prompts.create(s, principal, body.title, body.text)))
    return JSONResponse(made, status_code=201)


@router.delete("/prompts/{prompt_id}", status_code=204)
async def delete_prompt(prompt_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    await _in_session(request, lambda s: prompts.delete(s, principal, prompt_id))
    return Response(status_code=204)


# -- the common library -----------------------------------------------------------------------
Kind = Literal["agent", "prompt", "template", "service", "connector"]


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    ref: str = Field(min_length=1, max_length=100)  # agent id, prompt id, template key, service id, connector name
    description: str = Field(default="", max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=10)
    licence: str | None = Field(default=None, max_length=200)
    note: str = Field(default="", max_length=2000)  # what changed in this version


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    approve: bool
    note: str = Field(default="", max_length=2000)


class ForkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    version: int | None = Field(default=None, ge=1)


@router.get("/library")
async def search_library(request: Request, q: str = "", kind: Kind | None = None, tag: str | None = None,
                         pending: bool = False, principal: Principal = Depends(require_principal)):
    found = await _in_session(request, lambda s: asset_library.search(s, principal, q[:200], kind, tag, pending))
    return JSONResponse({"data": found})


@router.post("/library", status_code=201)
async def publish(body: PublishIn, request: Request, principal: Principal = Depends(require_principal)):
    settings = platform_of(request).settings
    licence = body.licence if body.licence is not None else settings.library.default_licence
    made = await _in_session(request, lambda s: asset_library.publish(
        s, principal, body.kind, body.ref, description=body.description, tags=body.tags, licence=licence,
        note=body.note, review_required=settings.library.review_required, custom_services=settings.services.custom))
    return JSONResponse(made, status_code=201)


@router.get("/library/{asset_id}")
async def preview(asset_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    return JSONResponse(await _in_session(request, lambda s: asset_library.preview(s, principal, asset_id)))


@router.post("/library/{asset_id}/review")
async def review(asset_id: DbId, body: ReviewIn, request: Request, principal: Principal = Depends(require_principal)):
    return JSONResponse(await _in_session(request, lambda s: asset_library.review(
        s, principal, asset_id, body.version, body.approve, body.note)))


@router.post("/library/{asset_id}/withdraw")
async def withdraw(asset_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    return JSONResponse(await _in_session(request, lambda s: asset_library.withdraw(s, principal, asset_id)))


@router.post("/library/{asset_id}/fork", status_code=201)
async def fork(asset_id: DbId, body: ForkIn, request: Request, principal: Principal = Depends(require_principal)):
    made = await _in_session(request, lambda s: asset_library.fork(
        s, principal, asset_id, body.name, body.version, platform_of(request).settings.connectors.policy()))
    return JSONResponse(made, status_code=201)


@router.get("/library/{asset_id}/export")
async def export_published(asset_id: DbId, request: Request, format: Literal["yaml", "json"] = "yaml",
                           version: int | None = None, principal: Principal = Depends(require_principal)):
    doc = await _in_session(request, lambda s: asset_library.published_document(s, principal, asset_id, version))
    return _asset_file(doc, format)


def _asset_file(doc: dict[str, Any], fmt: str) -> Response:
    media = "application/yaml" if fmt == "yaml" else "application/json"
    name = f"hanchang-{doc['kind']}-{doc['name']}-v{doc.get('version', 0)}.{fmt}"
    return Response(asset_documents.dump(doc, fmt).encode(), media_type=f"{media}; charset=utf-8",
                    headers=download_headers(name))


@router.get("/assets/export")
async def export_own(request: Request, kind: Kind, ref: str, format: Literal["yaml", "json"] = "yaml",
                     principal: Principal = Depends(require_principal)):
    """One of the caller's agency's own things as a portable file."""
    services = platform_of(request).settings.services.custom
    doc, _ = await _in_session(request, lambda s: asset_documents.document(s, principal, kind, ref[:100], services))
    return _asset_file(doc, format)


@router.post("/assets/import", status_code=201)
async def import_asset(request: Request, principal: Principal = Depends(require_principal)):
    """The body is the file itself (YAML or JSON, up to 256 KB)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise asset_documents.AssetFormatError("UTF-8로 저장된 YAML/JSON 파일을 올려 주세요.",
                                               "send the file as UTF-8") from None
    made = await _in_session(request, lambda s: asset_library.import_document(
        s, principal, text, platform_of(request).settings.connectors.policy()))
    return JSONResponse(made, status_code=201)


# -- the adoption checklist (3.3) -------------------------------------------------------------
class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=100)
    answer: Literal["yes", "no", "na"] | None
    note: str = Field(default="", max_length=4000)
    evidence: str = Field(default="", max_length=500)


def _checklist_agency(session: Session, principal: Principal, agency: str | None) -> Agency:
    if agency and agency != principal.agency_code:
        if not can(principal, SEE_EVERY_AGENCY):
            raise NotAllowed("다른 기관의 체크리스트는 볼 수 없습니다.", "your own agency's checklist only")
        found = session.scalar(select(Agency).where(Agency.code == agency))
        if found is None:
            raise NotFound(f"기관 '{agency}'이(가) 없습니다.", f"no agency '{agency}'")
        return found
    return session.get(Agency, principal.agency_id)


@router.get("/checklist")
async def get_checklist(request: Request, project: str = "기본", agency: str | None = None,
                        principal: Principal = Depends(require_principal)):
    settings = platform_of(request).settings

    def work(session: Session) -> dict[str, Any]:
        owner = _checklist_agency(session, principal, agency)
        return {**checklist.view(session, settings, owner.id, project), "agency": owner.code,
                "projects": checklist.projects(session, owner.id),
                "may_answer": can(principal, "checklist.answer", owner)}
    return JSONResponse(await _in_session(request, work))


@router.put("/checklist/{item}")
async def answer_item(item: str, body: AnswerIn, request: Request, agency: str | None = None,
                      principal: Principal = Depends(require_principal)):
    def work(session: Session) -> dict[str, Any]:
        owner = _checklist_agency(session, principal, agency)
        require(principal, "checklist.answer", owner)
        checklist.answer(session, owner.id, body.project, item[:16], body.answer, body.note, body.evidence,
                         principal.user_id)
        trail.record_by(session, principal, "checklist.answer", {"agency": owner.code, "project": body.project,
                                                                 "item": item[:16], "answer": body.answer})
        return {"item": item, "answer": body.answer}
    return JSONResponse(await _in_session(request, work))


@router.get("/checklist/export")
async def export_checklist(request: Request, project: str = "기본", agency: str | None = None,
                           format: Literal["xlsx", "hwpx"] = "xlsx", principal: Principal = Depends(require_principal)):
    settings = platform_of(request).settings
    write, media_type = checklist.WRITERS[format]
    zone = settings.budgets.timezone

    def work(session: Session) -> tuple[bytes, str]:
        owner = _checklist_agency(session, principal, agency)
        return write(owner.name, checklist.view(session, settings, owner.id, project), zone), owner.code
    body, code = await _in_session(request, work)
    today = datetime.now(ZoneInfo(zone)).date()
    return Response(body, media_type=media_type,
                    headers=download_headers(f"hanchang-checklist-{code}-{project}-{today:%Y%m%d}.{format}"))
