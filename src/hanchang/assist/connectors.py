"""Connectors: an agency's internal API described by OpenAPI 3, and the calls proposed to it.

The model may only propose a call; this module checks it against the document (known
operation, known and required parameters), against the connector's zone and highest grade
(the data grade of the request and the personal data in the arguments, as for a model), builds
the request as OpenAPI says and checks its URL is the operation's own (connector_requests),
shows exactly what would be sent, and sends it only after the user confirms — or at once for
read-only (GET) operations carrying 공개 (O) data and no personal data, when the connector
auto-approves reads. Every call goes only where the allow list lets it, to the address checked
at that moment (connector_destinations). Every proposal, refusal, decision and result goes into
the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang import plugins
from hanchang.assist import connector_requests, mcp_connectors
from hanchang.audit import trail
from hanchang.core.errors import AlreadyExists, HanchangError, NotFound
from hanchang.core.grades import Grade
from hanchang.core.models import Zone
from hanchang.core.permissions import require
from hanchang.core.principal import Principal
from hanchang.guard.destinations import DestinationPolicy, DestinationRefused, GuardedTransport
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
    header_params: tuple[str, ...] = ()

    @property
    def read_only(self) -> bool:
        return self.method == "GET"

    def describe(self) -> str:
        params = ", ".join((*self.path_params, *self.query_params, *self.header_params, *self.body_fields)) or "-"
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
                     if p.get("in") in ("path", "query", "header")]
            headers = tuple(p["name"] for p in params if p.get("in") == "header")
            try:
                connector_requests.check_header_names(headers)
            except connector_requests.UnsafeCall as exc:
                raise ActionError(exc.message_ko, exc.message_en) from None
            types += [(name, _argument_type(spec, prop)) for name, prop in (schema.get("properties") or {}).items()]
            found[op_id] = Operation(
                op_id, method.upper(), path, op.get("summary", ""),
                tuple(p["name"] for p in params if p.get("in") == "path"),
                tuple(p["name"] for p in params if p.get("in") == "query"),
                tuple(required), tuple((schema.get("properties") or {}).keys()), tuple(types), headers)
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


def prepare_description(base_url: str, spec: dict[str, Any], policy: DestinationPolicy) -> dict[str, Any]:
    """For an MCP server, its tools listed now (blocking: call it from a thread, before a session);
    nothing is contacted where the allow list does not let a connector go."""
    if not mcp_connectors.is_mcp(spec):
        return spec
    _destination(policy, base_url)
    zone = (spec.get("mcp") or {}).get("zone", "internal")
    if zone not in ("internal", "external"):
        raise ActionError("MCP 서버의 zone은 internal(내부망) 또는 external(외부망)입니다.",
                          "zone: internal | external")
    try:
        tools = mcp_connectors.list_tools(base_url, policy)
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


def _destination(policy: DestinationPolicy, base_url: str) -> None:
    try:
        policy.check(base_url)
    except DestinationRefused as exc:
        raise ActionError(exc.message_ko, exc.message_en) from None


def _placement(spec: dict[str, Any], zone: Zone | str | None, max_grade: Grade | str | None) -> tuple[Zone, Grade]:
    """The connector's zone and highest grade: an MCP server's zone is in its description; a
    server outside the network receives 공개 (O) data only."""
    placed = mcp_connectors.zone_of(spec) if mcp_connectors.is_mcp(spec) else Zone(zone or Zone.INTERNAL)
    if zone is not None and Zone(zone) is not placed:
        raise ActionError("MCP 서버의 zone은 등록 설명(mcp.zone)과 같아야 합니다.",
                          "zone differs from the MCP description")
    grade = Grade.parse(max_grade) if max_grade is not None else Grade.OPEN
    if placed is Zone.EXTERNAL and grade > Grade.OPEN:
        raise ActionError("외부망(external) 연계 API에는 공개(O) 자료만 보낼 수 있습니다. max_grade를 O로 두세요.",
                          "an external connector may only receive grade O")
    return placed, grade


def register(session: Session, principal: Principal, name: str, base_url: str, spec: dict[str, Any],
             auto_approve_reads: bool, *, policy: DestinationPolicy, zone: Zone | str | None = None,
             max_grade: Grade | str | None = None) -> Connector:
    require(principal, "connectors.register")
    if not base_url.startswith(("http://", "https://")):
        raise ActionError("base_url은 http:// 또는 https://로 시작해야 합니다.", "base_url must be http(s)")
    _destination(policy, base_url)
    operations(spec)  # validate
    placed, grade = _placement(spec, zone, max_grade)
    if session.scalar(select(Connector).where(Connector.agency_id == principal.agency_id,
                                              Connector.name == name)):
        raise AlreadyExists(f"연계 API '{name}'이(가) 이미 있습니다.", f"connector '{name}' exists")
    connector = Connector(agency_id=principal.agency_id, name=name, base_url=base_url.rstrip("/"),
                          spec=json.dumps(spec, ensure_ascii=False), auto_approve_reads=auto_approve_reads,
                          zone=placed.value, max_grade=grade.value)
    session.add(connector)
    session.flush()
    trail.record_by(session, principal, "connectors.register", {"connector": name, "base_url": base_url,
                                                                "zone": placed.value, "max_grade": grade.value},
                    category="action")
    return connector


def for_agency(session: Session, principal: Principal) -> list[Connector]:
    return list(session.scalars(select(Connector).where(Connector.agency_id == principal.agency_id)
                                .order_by(Connector.name)))


def describe(connector: Connector) -> dict[str, Any]:
    spec = json.loads(connector.spec)
    ops = operations(spec)
    kind = "mcp" if mcp_connectors.is_mcp(spec) else "openapi"
    return {"id": connector.id, "name": connector.name, "base_url": connector.base_url, "kind": kind,
            "zone": connector.zone, "max_grade": connector.max_grade,
            "auto_approve_reads": connector.auto_approve_reads,
            "operations": [op.describe() for op in ops.values()]}


def connector_for(session: Session, principal: Principal, name: str) -> Connector:
    found = session.scalar(select(Connector).where(Connector.agency_id == principal.agency_id,
                                                   Connector.name == name))
    if found is None:
        raise NotFound(f"연계 API '{name}'을(를) 찾을 수 없습니다.", f"connector '{name}' not found")
    return found


def _refuse(session: Session, principal: Principal, connector: Connector, operation: str, message_ko: str,
            message_en: str, **detail: Any) -> CallRefused:
    """The refusal, audited in the caller's session (which commits it before reporting)."""
    trail.record_by(session, principal, "actions.refuse", {"connector": connector.name, "operation": operation,
                                                           "reason": message_en, **detail}, category="action")
    return CallRefused(message_ko, message_en)


def _check_outgoing(session: Session, principal: Principal, connector: Connector, op: Operation,
                    arguments: dict[str, Any], grade: Grade) -> dict[str, int]:
    """The grade and personal-data policy for what leaves for this connector, as for a model."""
    if grade > Grade.parse(connector.max_grade):
        raise _refuse(session, principal, connector, op.id,
                      f"연계 API '{connector.name}'에는 {Grade.parse(connector.max_grade).korean}"
                      f"({connector.max_grade})까지의 자료만 보낼 수 있습니다. 이 요청은 {grade.korean}({grade.value}) "
                      "자료입니다.", f"connector {connector.name!r} clears grade {connector.max_grade}; the request "
                      f"carries {grade.value}", grade=grade.value)
    try:
        return mcp_connectors.check_outgoing(Zone(connector.zone), connector.name, arguments, grade)
    except mcp_connectors.OutgoingRefused as exc:
        raise _refuse(session, principal, connector, op.id, exc.message,
                      "refused by the grade policy or the personal-data guard") from exc


def propose(session: Session, principal: Principal, connector: Connector, plan: dict[str, Any],
            grade: Grade = Grade.OPEN) -> PendingAction:
    """Check a proposed call against the document, the connector's zone and grade, and store it
    as pending, exactly as it would be sent."""
    spec = json.loads(connector.spec)
    ops = operations(spec)
    if plan.get("connector") not in (None, connector.name):
        raise ActionError(f"이 요청은 연계 API '{connector.name}'에만 보낼 수 있습니다.",
                          "the plan names another connector than the one picked")
    op = ops.get(str(plan.get("operation")))
    if op is None:
        raise ActionError(f"'{plan.get('operation')}' 작업은 이 API에 없습니다. 가능한 작업: {', '.join(ops)}",
                          "unknown operation")
    arguments = plan.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ActionError("인자(arguments)는 이름-값 묶음이어야 합니다.", "arguments must be an object")
    allowed = {*op.path_params, *op.query_params, *op.header_params, *op.body_fields}
    unknown = sorted(set(arguments) - allowed)
    missing = [name for name in op.required if name not in arguments]
    if unknown or missing:
        raise ActionError(f"인자가 맞지 않습니다. 모르는 인자: {unknown or '-'}, 빠진 인자: {missing or '-'}",
                          "arguments do not match the operation")
    pii = _check_outgoing(session, principal, connector, op, arguments, grade)
    headers: dict[str, str] = {}
    if op.method == MCP_METHOD:
        url, body = connector.base_url, {k: arguments[k] for k in op.body_fields if k in arguments}
    else:
        try:
            built = connector_requests.build(connector.base_url, op.path, op.path_params, op.query_params,
                                             op.header_params, op.body_fields, arguments)
        except connector_requests.UnsafeCall as exc:
            raise _refuse(session, principal, connector, op.id, exc.message_ko, exc.message_en,
                          arguments=arguments) from None
        url, headers, body = built.url, built.headers, built.body
    action = PendingAction(user_id=principal.user_id, connector_id=connector.id, operation=op.id,
                           method=op.method, url=url, body=json.dumps(body, ensure_ascii=False) if body else None,
                           headers=json.dumps(headers, ensure_ascii=False) if headers else None,
                           grade=grade.value, pii=json.dumps(pii) if pii else None, status="pending")
    session.add(action)
    session.flush()
    trail.record_by(session, principal, "actions.propose", {**preview(action), **({"pii": pii} if pii else {})},
                    category="action")
    return action


def auto_approvable(connector: Connector, action: PendingAction) -> bool:
    """Reads may go at once when the connector says so, and only with 공개 (O) data and no
    personal data in them; an MCP tool call always waits for the user (a tool does not declare
    reliably that it only reads)."""
    return (connector.auto_approve_reads and action.method == "GET" and action.grade == Grade.OPEN.value
            and not action.pii)


def owned_action(session: Session, principal: Principal, action_id: int) -> PendingAction:
    action = session.scalar(select(PendingAction).where(PendingAction.id == action_id,
                                                        PendingAction.user_id == principal.user_id))
    if action is None:
        raise NotFound("요청한 처리 건을 찾을 수 없습니다.", f"action {action_id} not found")
    return action


def decide(session: Session, principal: Principal, action: PendingAction, confirm: bool, *,
           policy: DestinationPolicy) -> PendingAction:
    """Confirm (send it) or reject a pending call; each decision is audited."""
    if action.status != "pending":
        raise AlreadyExists(f"이미 처리된 건입니다({action.status}).", f"action already {action.status}")
    action.decided_at = utcnow()
    if not confirm:
        action.status = "rejected"
        trail.record_by(session, principal, "actions.reject", preview(action), category="action")
        return action
    connector = session.get(Connector, action.connector_id)
    try:
        policy.check(connector.base_url)  # the allow list as it is now, not as it was at registration
        if action.method != MCP_METHOD:
            op = operations(json.loads(connector.spec)).get(action.operation)
            if op is None:
                raise connector_requests.UnsafeCall("이 작업은 API 설명에 더 이상 없습니다.", "operation gone")
            connector_requests.verify(connector.base_url, op.path, op.path_params, action.url)
    except (DestinationRefused, connector_requests.UnsafeCall) as exc:
        action.status = "refused"
        action.result = json.dumps({"error": exc.message_ko}, ensure_ascii=False)
        trail.record_by(session, principal, "actions.refuse", {**preview(action), "reason": exc.message_en},
                        category="action")
        return action
    if action.method == MCP_METHOD:
        _call_mcp(session, action, connector, policy)
    else:
        _call_http(action, policy)
    trail.record_by(session, principal, "actions.execute", {**preview(action), "result": json.loads(action.result)},
                    category="action")
    return action


def _call_http(action: PendingAction, policy: DestinationPolicy) -> None:
    """Send exactly what was shown: method, URL, header parameters and body; to the address the
    allow list clears now; a redirect is reported, never followed."""
    try:
        with httpx.Client(transport=GuardedTransport(policy), timeout=TIMEOUT_S, follow_redirects=False) as client:
            response = client.request(action.method, action.url, headers=json.loads(action.headers or "{}"),
                                       json=json.loads(action.body) if action.body else None)
        action.status = "executed" if response.status_code < 300 else "failed"
        result: dict[str, Any] = {"status": response.status_code, "body": _body(response)}
        if response.is_redirect:
            result["redirect_not_followed"] = response.headers.get("location", "")
        action.result = json.dumps(result, ensure_ascii=False)
    except DestinationRefused as exc:
        action.status = "refused"
        action.result = json.dumps({"error": exc.message_ko}, ensure_ascii=False)
    except httpx.HTTPError as exc:
        action.status = "failed"
        action.result = json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False)


def _call_mcp(session: Session, action: PendingAction, connector: Connector, policy: DestinationPolicy) -> None:
    """Send a confirmed MCP tool call; its answer guarded by the server's zone, then kept."""
    spec = json.loads(connector.spec)
    try:
        answer = mcp_connectors.call_tool(action.url, action.operation, json.loads(action.body or "{}"), policy)
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
            "headers": json.loads(action.headers) if action.headers else None,
            "body": json.loads(action.body) if action.body else None, "grade": action.grade,
            "status": action.status,
            "result": json.loads(action.result) if action.result else None}


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]
