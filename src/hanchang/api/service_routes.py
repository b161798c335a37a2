"""/api/services: the work services, listed and run through the same gateway as chat."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hanchang.assist import agents, connectors, templates
from hanchang.assist.services import ServiceContext
from hanchang.assist.services.export import EXPORT_FORMATS
from hanchang.core.errors import HanchangError, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse
from hanchang.http.types import DbId, GradeIn

router = APIRouter(prefix="/api/services")
connector_router = APIRouter(prefix="/api")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any]
    data_grade: GradeIn = Grade.OPEN
    model: str | None = None
    agent: str | None = Field(default=None, max_length=40)  # agent:<id>: run as that agent


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=500_000)
    format: str = "docx"


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name_ko: str = Field(min_length=1, max_length=100)
    sections: list[str] = Field(min_length=1, max_length=templates.MAX_SECTIONS)
    instructions: str = Field(min_length=1, max_length=4000)
    example: str = Field(default="", max_length=20_000)


@router.get("")
async def list_services(request: Request, principal: Principal = Depends(require_principal)):
    offered = [s.describe() for s in platform_of(request).services.values() if s.offered_to(principal)]
    return JSONResponse({"data": offered})


@router.post("/{service_id}")
async def run_service(service_id: str, body: RunRequest, request: Request,
                      principal: Principal = Depends(require_principal)):
    service = platform_of(request).services.get(service_id)
    if service is None or not service.offered_to(principal):
        raise NotFound(f"서비스 '{service_id}'이(가) 없습니다.", f"no service '{service_id}'")
    model, agent_id, agent = body.model, None, body.agent
    if agent is None and agents.is_ref(model):  # an agent picked where a model goes
        model, agent = None, model
    raw = dict(body.inputs)
    if agent:
        def as_agent():
            with platform_of(request).db.session() as session:
                return agents.for_service(session, principal, agent, service.id, raw)
        definition, agent_model, raw = await run_in_threadpool(as_agent)
        model, agent_id = model if service.id != "qa" and model else agent_model, definition.id
    inputs = service.validate(raw)
    context = ServiceContext(platform_of(request), principal, body.data_grade, model, agent_id)
    result = await service.run(context, inputs)
    return JSONResponse({"service": service.id, **result.as_dict()})


_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@router.post("/draft/export")
async def export_draft(body: ExportRequest, principal: Principal = Depends(require_principal)):
    exporter = EXPORT_FORMATS.get(body.format)
    if exporter is None:
        raise HanchangError(f"내보낼 형식은 {', '.join(EXPORT_FORMATS)} 중 하나입니다.",
                             f"format must be one of {', '.join(EXPORT_FORMATS)}")
    # Office formats are XML: control characters (a stray BEL, NUL) cannot be written; drop them.
    title, text = _XML_UNSAFE.sub("", body.title) or "문서", _XML_UNSAFE.sub("", body.text)
    content = await run_in_threadpool(exporter.write, title, text)
    filename = quote(re.sub(r'[\\/:*?"<>|\x00-\x1f\u202a-\u202e\u2066-\u2069]', "_", f"{title}.{body.format}"))
    return Response(content, media_type=exporter.media_type,
                    headers={"content-disposition": f"attachment; filename*=UTF-8''{filename}"})


@router.get("/draft/templates")
async def list_templates(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return [t.describe() for t in templates.available(session, principal).values()]
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.put("/draft/templates/{key}")
async def save_template(key: str, body: TemplateIn, request: Request,
                        principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return templates.save(session, principal, key, body.name_ko, body.sections, body.instructions,
                                  body.example).describe()
    return JSONResponse(await run_in_threadpool(work))


@router.delete("/draft/templates/{key}", status_code=204)
async def delete_template(key: str, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            templates.delete(session, principal, key)
    await run_in_threadpool(work)
    return Response(status_code=204)


# -- connectors and actions (the act service) -----------------------------------------------
class ConnectorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    base_url: str = Field(min_length=8, max_length=500)
    spec: dict[str, Any]
    auto_approve_reads: bool = False
    zone: Literal["internal", "external"] | None = None  # an MCP server's is in its description
    max_grade: GradeIn | None = None  # the highest data grade a call may carry to it (default O)


@connector_router.get("/connectors")
async def list_connectors(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with platform_of(request).db.session() as session:
            return [connectors.describe(c) for c in connectors.for_agency(session, principal)]
    return JSONResponse({"data": await run_in_threadpool(work)})


@connector_router.post("/connectors", status_code=201)
async def register_connector(body: ConnectorIn, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        require(principal, "connectors.register")  # before any call to the server it names
        policy = platform_of(request).settings.connectors.policy()
        spec = connectors.prepare_description(body.base_url, body.spec, policy)  # an MCP server's tools, listed now
        with platform_of(request).db.session() as session:
            created = connectors.register(session, principal, body.name, body.base_url, spec,
                                          body.auto_approve_reads, policy=policy, zone=body.zone,
                                          max_grade=body.max_grade)
            return connectors.describe(created)
    return JSONResponse(await run_in_threadpool(work), status_code=201)


@connector_router.post("/actions/{action_id}/{decision}")
async def decide_action(action_id: DbId, decision: str, request: Request,
                        principal: Principal = Depends(require_principal)):
    if decision not in ("confirm", "reject"):
        raise NotFound("알 수 없는 결정입니다. confirm 또는 reject를 쓰세요.", "use confirm or reject")

    def work():
        with platform_of(request).db.session() as session:
            action = connectors.owned_action(session, principal, action_id)
            return connectors.preview(connectors.decide(session, principal, action, decision == "confirm",
                                                        policy=platform_of(request).settings.connectors.policy()))
    return JSONResponse(await run_in_threadpool(work))
