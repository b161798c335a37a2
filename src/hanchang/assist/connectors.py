"""Connectors: an agency's internal API described by OpenAPI 3, and the calls proposed to it.

The model may only propose a call; this module checks it against the document (known
operation, known and required parameters), shows exactly what would be sent, and sends it
only after the user confirms — or at once for read-only (GET) operations when the connector
auto-approves reads. Every proposal, decision and result goes into the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang import plugins
from hanchang.assist import mcp_connectors
from hanchang.audit import trail
from hanchang.core.errors import AlreadyExists, HanchangError, NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.store.tables import Connector, PendingAction, utcnow

TIMEOUT_S = 15.0
MCP_METHOD = "MCP"  # an operation of an MCP server: sent as MCP tools/call to the connector's URL


class ActionError(HanchangError):
    status, code = 400, "invalid_action"


class CallRefused(ActionError):
    """A proposed call the grade policy or the personal-data guard refuses. Its audit record is
    already in the session: the caller commits it, then reports the refusal."""

    code = "call_refused"


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str
    summary: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    required: tuple[str, ...]
    body_fields: tuple[str, ...]
    argument_types: tuple[tuple[str, dict[str, Any]], ...] = ()  # name → JSON schema (type, enum)

    @property
    def read_only(self) -> bool:
        return self.method == "GET"

    def describe(self) -> str:
        params = ", ".join((*self.path_params, *self.query_params, *self.body_fields)) or "-"
        return f"{self.id}: {self.method} {self.path} — {self.summary} (인자: {params})"

    def proposal_schema(self) -> dict[str, Any]:
        """The JSON a model must write to propose this operation: its id and its arguments."""
        return {"type": "object", "required": ["operation", "arguments"], "properties": {
            "operation": {"const": self.id},
            "arguments": {"type": "object", "properties": dict(self.argument_types),
                          "required": list(self.required)}}}


def _argument_type(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    resolved = _resolve(spec, schema or {})
    kept = {k: resolved[k] for k in ("type", "enum") if k in resolved}
    return kept if kept.get("type") in ("string", "integer", "number", "boolean") else {"type": "string"}


@dataclass(frozen=True)
class ConnectorFormat:
    """A format of API description an agency registers, turned into the operations a model may
    propose (OpenAPI 3 built in; a plugin adds others under `hanchang.connectors`). The calls
    are HTTP, sent by `decide` after the user confirms, whatever the format."""

    accepts: Callable[[dict[str, Any]], bool]
    operations: Callable[[dict[str, Any]], dict[str, Operation]]


def operations(spec: dict[str, Any]) -> dict[str, Operation]:
    """The operations of a registered description, by the first format that accepts it."""
    for connector_format in formats().values():
        if connector_format.accepts(spec):
            return connector_format.operations(spec)
    raise ActionError("API 설명 형식을 알 수 없습니다. OpenAPI 3 문서(openapi, paths)나 MCP 서버({\"mcp\": {}})를 "
                      "등록해 주세요.", f"unknown description format; known: {', '.join(formats())}")


def openapi_operations(spec: dict[str, Any]) -> dict[str, Operation]:
    found = {}
    for path, methods in (spec.get("paths") or {}).items():
        for method, op in methods.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not isinstance(op, dict):
                continue
            params = op.get("parameters") or []
            schema = _resolve(spec, (((op.get("requestBody") or {}).get("content") or {})
                                     .get("application/json") or {}).get("schema") or {})
            required = [p["name"] for p in params if p.get("required")] + list(schema.get("required") or [])
            op_id = op.get("operationId") or f"{method}_{path}".replace("/", "_").strip("_")
            types = [(p["name"], _argument_type(spec, p.get("schema") or {})) for p in params
                     if p.get("in") in ("path", "query")]
            types += [(name, _argument_type(spec, prop)) for name, prop in (schema.get("properties") or {}).items()]
            found[op_id] = Operation(
                op_id, method.upper(), path, op.get("summary", ""),
                tuple(p["name"] for p in params if p.get("in") == "path"),
                tuple(p["name"] for p in params if p.get("in") == "query"),
                tuple(required), tuple((schema.get("properties") or {}).keys()), tuple(types))
    if not found:
        raise ActionError("OpenAPI 문서에 호출할 수 있는 작업(paths)이 없습니다.", "no operations in the document")
    return found


def mcp_operations(spec: dict[str, Any]) -> dict[str, Operation]:
    """An MCP server's tools (listed at registration) as operations; the call is MCP tools/call."""
    found = {}
    for tool in spec.get("tools") or ():
        schema = tool.get("inputSchema") or {}
        properties = schema.get("properties") or {}
        found[tool["name"]] = Operation(
            tool["name"], MCP_METHOD, tool["name"], (tool.get("description") or "")[:300], (), (),
            tuple(schema.get("required") or ()), tuple(properties),
            tuple((name, _argument_type(spec, prop)) for name, prop in properties.items()))
    if not found:
        raise ActionError("MCP 서버에 쓸 수 있는 도구가 없습니다.", "the MCP server lists no tools")
    return found


@cache
def formats() -> dict[str, ConnectorFormat]:
    """OpenAPI, MCP servers, and the formats plugins add (`hanchang.connectors`), loaded on first use."""
    return plugins.merged(
        plugins.CONNECTORS,
        {"openapi": ConnectorFormat(lambda spec: "openapi" in spec or "paths" in spec, openapi_operations),
         "mcp": ConnectorFormat(mcp_connectors.is_mcp, mcp_operations)},
        plugins.load_typed(plugins.CONNECTORS, ConnectorFormat))


def prepare_description(base_url: str, spec: dict[str, Any]) -> dict[str, Any]:
    """For an MCP server, its tools listed now (blocking: call it from a thread, before a session)."""
    if not mcp_connectors.is_mcp(spec):
        return spec
    zone = (spec.get("mcp") or {}).get("zone", "internal")
    if zone not in ("internal", "external"):
        raise ActionError("MCP 서버의 zone은 internal(내부망) 또는 external(외부망)입니다.",
                          "zone: internal | external")
    try:
        tools = mcp_connectors.list_tools(base_url)
    except mcp_connectors.McpUnreachable as exc:
        raise ActionError(f"MCP 서버({base_url})에 연결하지 못했습니다. 주소와 서버 상태를 확인해 주세요.",
                          f"cannot reach the MCP server: {exc}") from exc
    return {"mcp": {"transport": "streamable-http", "zone": zone}, "tools": tools}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (#/components/schemas/Name) to the schema it names."""
    ref = schema.get("$ref")
    if not ref or not ref.startswith("#/"):
        return schema
    target: Any = spec
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def register(session: Session, principal: Principal, name: str, base_url: str, spec: dict[str, Any],
             auto_approve_reads: bool) -> Connector:
    require(principal, "connectors.register")
    if not base_url.startswith(("http://", "https://")):
        raise ActionError("base_url은 http:// 또는 https://로 시작해야 합니다.", "base_url must be http(s)")
    operations(spec)  # validate
    if session.scalar(select(Connector).where(Connector.agency_id == principal.agency_id,
                                              Connector.name == name)):
        raise AlreadyExists(f"연계 API '{name}'이(가) 이미 있습니다.", f"connector '{name}' exists")
    connector = Connector(agency_id=principal.agency_id, name=name, base_url=base_url.rstrip("/"),
                          spec=json.dumps(spec, ensure_ascii=False), auto_approve_reads=auto_approve_reads)
    session.add(connector)
    session.flush()
    trail.record_by(session, principal, "connectors.register", {"connector": name, "base_url": base_url},
                    category="action")
    return connector


def for_agency(session: Session, principal: Principal) -> list[Connector]:
    return list(session.scalars(select(Connector).where(Connector.agency_id == principal.agency_id)
                                .order_by(Connector.name)))


def describe(connector: Connector) -> dict[str, Any]:
    spec = json.loads(connector.spec)
    ops = operations(spec)
    kind = {"kind": "mcp", "zone": mcp_connectors.zone_of(spec).value} if mcp_connectors.is_mcp(spec) else {
        "kind": "openapi"}
    return {"id": connector.id, "name": connector.name, "base_url": connector.base_url, **kind,
            "auto_approve_reads": connector.auto_approve_reads,
            "operations": [op.describe() for op in ops.values()]}


def connector_for(session: Session, principal: Principal, name: str) -> Connector:
    found = session.scalar(select(Connector).where(Connector.agency_id == principal.agency_id,
                                                   Connector.name == name))
    if found is None:
        raise NotFound(f"연계 API '{name}'을(를) 찾을 수 없습니다.", f"connector '{name}' not found")
    return found


def propose(session: Session, principal: Principal, connector: Connector, plan: dict[str, Any],
            grade: Grade = Grade.OPEN) -> PendingAction:
    """Check a proposed call against the document (and, for an MCP server, what may leave for it)
    and store it as pending."""
    spec = json.loads(connector.spec)
    ops = operations(spec)
    op = ops.get(str(plan.get("operation")))
    if op is None:
        raise ActionError(f"'{plan.get('operation')}' 작업은 이 API에 없습니다. 가능한 작업: {', '.join(ops)}",
                          "unknown operation")
    arguments = plan.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ActionError("인자(arguments)는 이름-값 묶음이어야 합니다.", "arguments must be an object")
    allowed = {*op.path_params, *op.query_params, *op.body_fields}
    unknown = sorted(set(arguments) - allowed)
    missing = [name for name in op.required if name not in arguments]
    if unknown or missing:
        raise ActionError(f"인자가 맞지 않습니다. 모르는 인자: {unknown or '-'}, 빠진 인자: {missing or '-'}",
                          "arguments do not match the operation")
    pii: dict[str, int] = {}
    if op.method == MCP_METHOD:
        try:
            pii = mcp_connectors.check_outgoing(spec, connector.name, arguments, grade)
        except mcp_connectors.OutgoingRefused as exc:
            trail.record_by(session, principal, "actions.refuse", {"connector": connector.name, "operation": op.id,
                                                                   "reason": exc.message}, category="action")
            raise CallRefused(exc.message, "refused by the grade policy or the personal-data guard") from exc
        url, body = connector.base_url, {k: arguments[k] for k in op.body_fields if k in arguments}
    else:
        path = op.path
        for name in op.path_params:
            path = path.replace("{" + name + "}", str(arguments[name]))
        query = {k: arguments[k] for k in op.query_params if k in arguments}
        body = {k: arguments[k] for k in op.body_fields if k in arguments}
        url = connector.base_url + path + (f"?{urlencode(query)}" if query else "")
    action = PendingAction(user_id=principal.user_id, connector_id=connector.id, operation=op.id,
                           method=op.method, url=url, body=json.dumps(body, ensure_ascii=False) if body else None,
                           status="pending")
    session.add(action)
    session.flush()
    trail.record_by(session, principal, "actions.propose", {**preview(action), **({"pii": pii} if pii else {})},
                    category="action")
    return action


def auto_approvable(connector: Connector, action: PendingAction) -> bool:
    """Reads may go at once when the connector says so; an MCP tool call always waits for the user
    (a tool does not declare reliably that it only reads)."""
    return connector.auto_approve_reads and action.method == "GET"


def owned_action(session: Session, principal: Principal, action_id: int) -> PendingAction:
    action = session.scalar(select(PendingAction).where(PendingAction.id == action_id,
                                                        PendingAction.user_id == principal.user_id))
    if action is None:
        raise NotFound("요청한 처리 건을 찾을 수 없습니다.", f"action {action_id} not found")
    return action


def decide(session: Session, principal: Principal, action: PendingAction, confirm: bool) -> PendingAction:
    """Confirm (send it) or reject a pending call; each decision is audited."""
    if action.status != "pending":
        raise AlreadyExists(f"이미 처리된 건입니다({action.status}).", f"action already {action.status}")
    action.decided_at = utcnow()
    if not confirm:
        action.status = "rejected"
        trail.record_by(session, principal, "actions.reject", preview(action), category="action")
        return action
    if action.method == MCP_METHOD:
        _call_mcp(session, action)
    else:
        try:
            response = httpx.request(action.method, action.url, timeout=TIMEOUT_S,
                                     json=json.loads(action.body) if action.body else None)
            action.status = "executed" if response.status_code < 400 else "failed"
            action.result = json.dumps({"status": response.status_code, "body": _body(response)}, ensure_ascii=False)
        except httpx.HTTPError as exc:
            action.status = "failed"
            action.result = json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False)
    trail.record_by(session, principal, "actions.execute", {**preview(action), "result": json.loads(action.result)},
                    category="action")
    return action


def _call_mcp(session: Session, action: PendingAction) -> None:
    """Send a confirmed MCP tool call; its answer guarded by the server's zone, then kept."""
    connector = session.get(Connector, action.connector_id)
    spec = json.loads(connector.spec)
    try:
        answer = mcp_connectors.call_tool(action.url, action.operation, json.loads(action.body or "{}"))
    except mcp_connectors.McpUnreachable as exc:
        action.status = "failed"
        action.result = json.dumps({"error": f"MCP 서버에 연결하지 못했습니다 (cannot reach the MCP server: {exc})"},
                                   ensure_ascii=False)
        return
    answer, pii = mcp_connectors.guard_result(spec, connector.name, answer)
    action.status = "failed" if answer["is_error"] else "executed"
    action.result = json.dumps({**answer, **({"pii": pii} if pii else {})}, ensure_ascii=False)


def preview(action: PendingAction) -> dict[str, Any]:
    """Exactly what is (or would be) sent, for the user and the audit trail."""
    return {"id": action.id, "operation": action.operation, "method": action.method, "url": action.url,
            "body": json.loads(action.body) if action.body else None, "status": action.status,
            "result": json.loads(action.result) if action.result else None}


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]
