"""MCP servers as connectors: an agency registers a Model Context Protocol server (streamable
HTTP) next to its OpenAPI connectors, and its tools become operations the `act` service may
propose. Everything else is the connector flow (assist/connectors.py): the model only proposes,
the user sees exactly what would be sent and confirms, every step is audited.

What goes out and what comes back passes the personal-data guard by the server's zone
(`core.pii_modes.tool_call_modes`): a server outside the network gets no personal data (the call
is refused with what was found) and no data above 공개 (O); what it answers is masked. The
description stored at registration is `{"mcp": {"transport": "streamable-http", "zone": …},
"tools": [{name, description, inputSchema}]}`, read again with `refresh`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hanchang.core.grades import Grade
from hanchang.core.models import Zone
from hanchang.core.pii_modes import PiiMode, tool_call_modes
from hanchang.guard.destinations import DestinationPolicy
from hanchang.guard.request_guard import PersonalDataBlocked, guard_request

TIMEOUT_S = 30.0
MAX_TOOLS = 200
MAX_RESULT_CHARS = 20_000


class McpUnreachable(Exception):
    pass


def is_mcp(spec: dict[str, Any]) -> bool:
    return isinstance(spec.get("mcp"), dict)


def zone_of(spec: dict[str, Any]) -> Zone:
    return Zone.EXTERNAL if (spec.get("mcp") or {}).get("zone") == "external" else Zone.INTERNAL


async def _session(url: str, work, policy: DestinationPolicy):
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=TIMEOUT_S, transport=guarded_mcp_transport(policy),
                                  follow_redirects=False) as http, \
            streamable_http_client(url, http_client=http) as (read, write, *_), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def _blocking(coroutine_factory):
    """Run an MCP exchange from synchronous code (a worker thread), failures as McpUnreachable."""
    try:
        return asyncio.run(asyncio.wait_for(coroutine_factory(), TIMEOUT_S + 5))
    except Exception as exc:  # connection refused, a non-MCP answer, a timeout: all "cannot reach"
        raise McpUnreachable(f"{type(exc).__name__}: {exc}"[:300]) from exc


def list_tools(url: str, policy: DestinationPolicy) -> list[dict[str, Any]]:
    """The server's tools as stored in the connector's description."""
    async def work(session):
        tools, cursor = [], None
        while len(tools) < MAX_TOOLS:
            page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
            tools += [{"name": t.name, "description": t.description or "", "inputSchema": t.input_schema}
                      for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools[:MAX_TOOLS]
    return _blocking(lambda: _session(url, work, policy))


def call_tool(url: str, name: str, arguments: dict[str, Any], policy: DestinationPolicy) -> dict[str, Any]:
    """Call one tool; its answer as {is_error, text, structured}."""
    async def work(session):
        result = await session.call_tool(name, arguments)
        text = "\n".join(part.text for part in result.content if getattr(part, "type", "") == "text")
        return {"is_error": bool(result.is_error), "text": text[:MAX_RESULT_CHARS],
                "structured": result.structured_content}
    return _blocking(lambda: _session(url, work, policy))


def guarded_mcp_transport(policy: DestinationPolicy):
    """The MCP client's transport (httpx2): every request's destination checked and pinned."""
    import httpx2

    class Guarded(httpx2.AsyncHTTPTransport):
        async def handle_async_request(self, request):
            destination = policy.check(str(request.url))
            request.url = request.url.copy_with(host=destination.addresses[0])
            request.extensions = {**request.extensions, "sni_hostname": destination.host}
            return await super().handle_async_request(request)

    return Guarded()


def check_outgoing(zone: Zone, connector: str, arguments: dict[str, Any], grade: Grade) -> dict[str, int]:
    """Refuse what may not leave for a connector in `zone` (an OpenAPI one or an MCP server); the
    personal data found, counted."""
    if zone is Zone.EXTERNAL and grade > Grade.OPEN:
        raise OutgoingRefused(f"외부망 연계 API '{connector}'에는 {grade.korean}({grade.value}) 자료를 보낼 수 "
                              "없습니다. (A connector outside the network receives 공개 (O) data only.)")
    mode, _ = tool_call_modes(zone)
    try:  # as JSON text, so every value is read whatever its key (the guard skips OpenAI's `id`, `type` …)
        return guard_request({"arguments": json.dumps(arguments, ensure_ascii=False)}, mode, connector).counts
    except PersonalDataBlocked as exc:
        raise OutgoingRefused(exc.message.replace(f"모델 '{connector}'", f"외부망 연계 API '{connector}'")) from exc


def guard_result(spec: dict[str, Any], connector: str, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """The answer as the user may read it (masked from outside), and the personal data it held."""
    _, mode = tool_call_modes(zone_of(spec))
    readable = {"text": result["text"], "structured": json.dumps(result.get("structured"), ensure_ascii=False)}
    guarded = guard_request(readable, mode, connector)
    if mode is not PiiMode.MASK or not guarded.counts:
        return result, guarded.counts
    return {**result, "text": guarded.body["text"], "structured": json.loads(guarded.body["structured"])}, \
        guarded.counts


class OutgoingRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
