"""A civil-petition register (민원 대장) served as an MCP server (the official SDK, streamable HTTP),
to try MCP connectors against: a look-up whose answers hold personal data, and a registration
that changes state. `received` keeps every call's arguments, so tests see what arrived."""

from __future__ import annotations

import contextlib
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings


def create_petition_app() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(ASGI app, petitions, received calls)."""
    server = MCPServer("민원 대장 (demo)")
    petitions: list[dict[str, Any]] = [
        {"number": "2026-0001", "title": "가로등 고장", "status": "처리 중", "contact": "김민원 010-2345-6789"}]
    received: list[dict[str, Any]] = []

    @server.tool(description="민원 번호로 처리 상태를 찾습니다 (look up a petition by number).")
    def find_petition(number: str) -> dict[str, Any]:
        received.append({"tool": "find_petition", "number": number})
        for petition in petitions:
            if petition["number"] == number:
                return petition
        return {"number": number, "status": "없음"}

    @server.tool(description="새 민원을 접수합니다 (register a new petition).")
    def register_petition(title: str, district: str) -> dict[str, Any]:
        received.append({"tool": "register_petition", "title": title, "district": district})
        petition = {"number": f"2026-{len(petitions) + 1:04d}", "title": title, "district": district,
                    "status": "접수"}
        petitions.append(petition)
        return petition

    app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                     transport_security=TransportSecuritySettings(
                                         enable_dns_rebinding_protection=False))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        async with server.session_manager.run():
            yield
    app.router.lifespan_context = lifespan
    return app, petitions, received


if __name__ == "__main__":  # python -m hanchang_devtools.demo_mcp [PORT]: serves /mcp on localhost
    import sys

    import uvicorn

    uvicorn.run(create_petition_app()[0], host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8011)
