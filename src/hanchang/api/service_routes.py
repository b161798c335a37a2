"""/api/services: the work services, listed and run through the same gateway as chat."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hanchang.api.auth import require_principal
from hanchang.api.responses import JSONResponse
from hanchang.assist.services import SERVICES, ServiceContext
from hanchang.assist.services.base import ServiceInputError
from hanchang.assist.services.export import to_docx
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.knowledge.collections import CollectionNotFound, KnowledgeError

router = APIRouter(prefix="/api/services")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any]
    data_grade: Grade = Grade.OPEN
    model: str | None = None

    @field_validator("data_grade", mode="before")
    @classmethod
    def _grade(cls, value):
        return Grade.parse(value)


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=500_000)
    format: str = "docx"


@router.get("")
async def list_services(principal: Principal = Depends(require_principal)):
    return JSONResponse({"data": [s.describe() for s in SERVICES.values()]})


@router.post("/{service_id}")
async def run_service(service_id: str, body: RunRequest, request: Request,
                      principal: Principal = Depends(require_principal)):
    service = SERVICES.get(service_id)
    if service is None:
        raise CollectionNotFound(f"서비스 '{service_id}'이(가) 없습니다.", f"no service '{service_id}'")
    try:
        inputs = service.validate(body.inputs)
    except ServiceInputError as exc:
        raise KnowledgeError(str(exc), "invalid service input") from None
    context = ServiceContext(request.app.state, principal, body.data_grade, body.model)
    try:
        result = await service.run(context, inputs)
    except ServiceInputError as exc:
        raise KnowledgeError(str(exc), "invalid service input") from None
    return JSONResponse({"service": service.id, **result.as_dict()})


@router.post("/draft/export")
async def export_draft(body: ExportRequest, principal: Principal = Depends(require_principal)):
    if body.format != "docx":
        raise KnowledgeError("지금은 DOCX로 내보낼 수 있습니다. (HWPX 내보내기는 준비 중)",
                             "only docx export is available")
    filename = quote(f"{body.title}.docx")
    return Response(to_docx(body.title, body.text),
                    media_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    headers={"content-disposition": f"attachment; filename*=UTF-8''{filename}"})
