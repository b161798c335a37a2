"""/mcp: Hanchang as an MCP server (Model Context Protocol, streamable HTTP, the official SDK).

Civil servants' IDE and desktop agents use the agency's knowledge and work services with the
caller's own API key and rights: every tool call authenticates the key it carries and runs the
same use cases as `/api` and `/v1` (readable collections only, the gateway's grade policy,
personal-data guard, limits, budgets, usage and audit for every model call).

What an MCP client receives leaves the platform (its own model reads it), so nothing above
`mcp.max_grade` (default 공개 O) is returned: passages above it are withheld and counted, an
answer grounded above it is refused with the reason. Stateless and JSON-answered, so any
worker or host can serve any call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Request
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from hanchang import __version__
from hanchang.assist import answer
from hanchang.assist.platform import Platform
from hanchang.assist.services.base import ServiceContext
from hanchang.config import McpConfig
from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.core.principal import Principal
from hanchang.guard.recognizers import labels_ko
from hanchang.guard.request_guard import PersonalDataBlocked, guard_request
from hanchang.http.errors import error_body
from hanchang.http.responses import JSONResponse
from hanchang.knowledge import collections as kc
from hanchang.knowledge.embedder import acting
from hanchang.knowledge.search import search

PATH = "/mcp"
# Services whose answer's grade is the grade the caller declares for their own input (no retrieval):
# `qa` and `counsel` are `ask`; `act` needs the window's confirmation step.
SERVICES = ("summarize", "translate", "draft", "analyze")
INSTRUCTIONS = ("한창(Hanchang) 범정부 AI 공통기반: 기관 지식베이스 검색(출처 포함), 근거 기반 답변, "
                "요약·번역·초안·표 분석. 호출자의 API 키 권한으로만 동작합니다. Agency knowledge search "
                "with citations, grounded answers and work services, with the caller's own rights.")


QUERY = "찾을 내용 (what to search for)"
QUESTION = "질문 (the question to answer from the knowledge bases)"
BASES = ("지식베이스 이름 또는 번호 목록; 비우면 읽을 수 있는 모두 (knowledge base names or ids; empty: all the "
         "caller may read)")
COLLECTIONS = "knowledge_bases와 같음: /v1의 이름 (the same as knowledge_bases, as /v1 calls it)"
TOP_K = "돌려줄 구절 수, 1~20 (how many passages, 1 to 20)"
MODEL = "한창의 모델 이름; 비우면 기본 모델 (a model of this platform; empty: the default)"
SERVICE = "summarize | translate | draft | analyze"
INPUTS = "서비스의 입력 (the service's inputs, e.g. {\"text\": …})"
DATA_GRADE = "입력 자료의 등급 O(공개) S(민감) C(기밀) (the grade of the input's data)"


def _bases(knowledge_bases: list[str] | None, collections: list[str] | None) -> list[str] | None:
    """Both names of the argument (MCP's and /v1's) mean the same; given both, both count."""
    chosen = [*(knowledge_bases or ()), *(collections or ())]
    return list(dict.fromkeys(chosen)) or None


def _refuse_unknown_arguments(server: MCPServer) -> None:
    """Every tool refuses arguments it does not declare (`additionalProperties: false`): a misnamed
    argument is an error, never a silently ungrounded answer."""
    for tool in server._tool_manager.list_tools():
        base = tool.fn_metadata.arg_model
        strict = type(base.__name__, (base,), {"model_config": ConfigDict(**base.model_config, extra="forbid"),
                                               "__module__": base.__module__})
        tool.fn_metadata.arg_model = strict
        tool.parameters = {**tool.parameters, "additionalProperties": False}


def mount(app: FastAPI, config: McpConfig) -> MCPServer:
    """Add /mcp to the app; the caller enters `server.session_manager.run()` in its lifespan."""
    server = MCPServer("Hanchang 한창", instructions=INSTRUCTIONS, version=__version__)
    ceiling = config.max_grade

    def platform() -> Platform:
        return app.state.platform

    async def caller(ctx: Context) -> Principal:
        header = (ctx.headers or {}).get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
        principal = await app.state.authenticator.principal(secret) if secret else None
        if principal is None:
            raise ToolError("API 키가 맞지 않거나 폐기되었습니다. (Invalid or revoked API key.)")
        return principal

    def released(principal: Principal, reply: dict[str, Any]) -> dict[str, Any]:
        """What a tool returns, through the personal-data policy for what leaves the platform."""
        mode = config.pii_for(principal.agency_code)
        try:
            guarded = guard_request(reply, mode, "MCP")
        except PersonalDataBlocked as exc:
            listed = ", ".join(f"{labels_ko()[k]} {v}건" for k, v in sorted(exc.counts.items()))
            raise ToolError(f"결과에 개인정보({listed})가 있어 MCP로 내보내지 않았습니다. 한창 창에서 보세요. "
                            "(The result holds personal data and is not returned over MCP.)") from exc
        if not guarded.counts:
            return reply
        return {**guarded.body, "personal_data": {"mode": mode.value, "found": guarded.counts}}

    def withheld_notice(count: int) -> str:
        return (f"{ceiling.korean}({ceiling.value})보다 높은 등급의 자료 {count}건은 MCP로 내보내지 "
                f"않았습니다. 한창 창에서 보세요. ({count} passage(s) above grade {ceiling.value} withheld; "
                "read them in the window.)")

    @server.tool(description="내가 읽을 수 있는 지식베이스 목록 "
                             "(the knowledge bases the caller may read: name, grade).")
    async def list_knowledge_bases(ctx: Context) -> dict[str, Any]:
        principal = await caller(ctx)

        def work() -> list[dict[str, Any]]:
            with platform().db.session() as session:
                return [{"name": c.name, "id": c.id, "grade": c.grade, "common": c.is_common,
                         "returned_by_mcp": Grade.parse(c.grade) <= ceiling}
                        for c in kc.list_readable(session, principal)]
        return {"knowledge_bases": await run_in_threadpool(work), "max_grade": ceiling.value}

    @server.tool(description="지식베이스 검색: 출처(문서·절·쪽)와 함께 관련 구절을 돌려줍니다. "
                             "knowledge_bases를 비우면 읽을 수 있는 모두를 찾습니다. "
                             "(Search knowledge bases; passages with their sources.)")
    async def search_knowledge(query: Annotated[str, Field(description=QUERY)], ctx: Context,
                               knowledge_bases: Annotated[list[str] | None, Field(description=BASES)] = None,
                               collections: Annotated[list[str] | None, Field(description=COLLECTIONS)] = None,
                               top_k: Annotated[int, Field(description=TOP_K, ge=1, le=20)] = 5) -> dict[str, Any]:
        principal = await caller(ctx)
        hanchang = platform()
        knowledge_bases = _bases(knowledge_bases, collections)

        def work() -> list[dict[str, Any]]:
            with hanchang.db.session() as session:
                chosen = [kc.get_readable(session, principal, ref) for ref in knowledge_bases] if knowledge_bases \
                    else kc.list_readable(session, principal)
            found = search(hanchang.knowledge, chosen, query, max(1, min(top_k, 20)),
                           embedder=acting(hanchang.embedder, principal, "embeddings.query"))
            return [r.as_dict() for r in found]
        results = await _run(work)
        kept = [r for r in results if Grade.parse(r["grade"]) <= ceiling]
        reply: dict[str, Any] = {"results": [{"index": i, **r} for i, r in enumerate(kept, 1)]}
        if len(kept) < len(results):
            reply["withheld"] = len(results) - len(kept)
            reply["notice"] = withheld_notice(reply["withheld"])
        return released(principal, reply)

    @server.tool(description="근거 기반 답변: 지식베이스에서 찾아 한창의 모델이 답하고 출처([n])를 답니다. "
                             "(A grounded answer from the knowledge bases by Hanchang's models, with citations.)")
    async def ask(question: Annotated[str, Field(description=QUESTION)], ctx: Context,
                  knowledge_bases: Annotated[list[str] | None, Field(description=BASES)] = None,
                  collections: Annotated[list[str] | None, Field(description=COLLECTIONS)] = None,
                  model: Annotated[str | None, Field(description=MODEL)] = None) -> dict[str, Any]:
        principal = await caller(ctx)
        knowledge_bases = _bases(knowledge_bases, collections)
        body = {"messages": [{"role": "user", "content": question}], **({"model": model} if model else {})}
        request = answer.AnswerRequest(body, Grade.OPEN, [], list(knowledge_bases or []), endpoint="mcp.ask")
        done = await _run(answer.complete, platform(), principal, request)
        grade = Grade.parse(done.call.report()["data_grade"])
        if grade > ceiling:  # answered inside the platform; not released to the MCP client
            raise ToolError(f"이 답변은 {grade.korean}({grade.value}) 자료에 근거하므로 MCP로 내보낼 수 "
                            f"없습니다. 한창 창에서 물어보세요. (The answer rests on grade {grade.value} "
                            f"material, above what MCP returns ({ceiling.value}); ask in the window.)")
        return released(principal, {"answer": done.text, "citations": done.citations or [],
                                    "model": done.result.get("model"), "data_grade": grade.value})

    @server.tool(description="업무 서비스 실행: summarize(요약, inputs.text), "
                             "translate(번역, inputs.text·target), draft(초안, inputs.template·request), "
                             "analyze(표 분석, inputs.csv·question). data_grade는 입력 자료의 등급입니다. "
                             "(Run a work service on your own input.)")
    async def use_service(service: Annotated[str, Field(description=SERVICE)],
                          inputs: Annotated[dict[str, Any], Field(description=INPUTS)], ctx: Context,
                          data_grade: Annotated[str, Field(description=DATA_GRADE)] = "O",
                          model: Annotated[str | None, Field(description=MODEL)] = None) -> dict[str, Any]:
        principal = await caller(ctx)
        hanchang = platform()
        chosen = hanchang.services.get(service)
        if service not in SERVICES or chosen is None or not chosen.offered_to(principal):
            raise ToolError(f"MCP로 쓸 수 있는 서비스는 {', '.join(SERVICES)}입니다. (Services over MCP: "
                            f"{', '.join(SERVICES)}.)")
        try:
            grade = Grade.parse(data_grade)
        except ValueError as exc:
            raise ToolError("data_grade는 O, S, C 중 하나입니다. (data_grade is O, S or C.)") from exc
        if grade > ceiling:
            raise ToolError(f"{grade.korean}({grade.value}) 자료의 결과는 MCP로 내보낼 수 없습니다. 한창 창의 "
                            f"업무 도구를 쓰세요. (Results of grade {grade.value} material are not returned "
                            "over MCP.)")
        valid = await _run(chosen.validate, inputs)
        result = await _run(chosen.run, ServiceContext(hanchang, principal, grade, model), valid)
        return released(principal, {"service": service, **result.as_dict()})

    _refuse_unknown_arguments(server)

    @app.get("/.well-known/oauth-protected-resource", include_in_schema=False)
    @app.get("/.well-known/oauth-protected-resource" + PATH, include_in_schema=False)
    async def protected_resource(request: Request):
        """RFC 9728: what /mcp is and how to present a credential (a Hanchang API key as a bearer
        token; no OAuth server issues them), so MCP clients stop guessing at OAuth."""
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"resource": base + PATH, "bearer_methods_supported": ["header"],
                             "resource_name": "Hanchang 한창 MCP", "authorization_servers": [],
                             "resource_documentation": base + "/docs",
                             "hanchang_credential": "Authorization: Bearer <Hanchang API key> (hanchang keys create)"})

    # Stateless and JSON-answered: no session to pin to one worker. Callers present a bearer key
    # (never a cookie), so a DNS-rebinding page has nothing to ride on: the Host check is not needed
    # and would refuse the platform's real host names behind a load balancer.
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    app.router.routes.append(Route(PATH, endpoint=_KeyRequired(app, StreamableHTTPASGIApp(server.session_manager)),
                                   methods=["GET", "POST", "DELETE"]))
    return server


async def _run(work: Callable[..., Any], *args: Any) -> Any:
    """A use case from a tool (awaited, or in a thread when it blocks): Hanchang's errors become
    the tool's error text (Korean, then English)."""
    try:
        if inspect.iscoroutinefunction(work):
            return await work(*args)
        return await run_in_threadpool(work, *args)
    except HanchangError as exc:
        raise ToolError(exc.message) from exc


def _challenge(scope) -> bytes:
    """The 401's WWW-Authenticate, pointing at the resource metadata (RFC 9728)."""
    headers = dict(scope.get("headers") or ())
    host = headers.get(b"host", b"").decode("latin-1") or "localhost"
    origin = f"{scope.get('scheme', 'http')}://{host}"
    return f'Bearer realm="hanchang", resource_metadata="{origin}/.well-known/oauth-protected-resource"'.encode()


class _KeyRequired:
    """Refuse a request without a valid API key before it reaches MCP (401, OpenAI-shaped body)."""

    def __init__(self, app: FastAPI, inner):
        self.app, self.inner = app, inner

    async def __call__(self, scope, receive, send) -> None:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not secret or await self.app.state.authenticator.principal(secret) is None:
            body = orjson.dumps(error_body("API 키가 필요합니다: Authorization: Bearer <한창 API 키>. "
                                           "(A valid Hanchang API key is required.)", "authentication_error",
                                           "invalid_api_key"))
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", _challenge(scope))]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.inner(scope, receive, send)
