"""The FastAPI application: built from Settings, holding one gateway and one database."""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from hanchang import __version__
from hanchang.api import audit_routes, knowledge_routes, openai_routes, service_routes
from hanchang.api.auth import KeyAuthenticator
from hanchang.api.errors import error_response, install_error_handlers
from hanchang.api.readiness import readiness
from hanchang.api.responses import JSONResponse
from hanchang.assist.embedding_calls import gateway_embedder
from hanchang.assist.services import SERVICES
from hanchang.assist.services.custom import ServiceConflict, catalogue
from hanchang.audit.checkpoints import CheckpointBook
from hanchang.audit.recorder import Recorder
from hanchang.audit.trail import PromptSealer
from hanchang.config import ConfigError, Settings
from hanchang.gateway.limits import create_limiter
from hanchang.gateway.registry import ModelRegistry
from hanchang.gateway.router import Gateway
from hanchang.knowledge.index_store import IndexStore
from hanchang.store.db import Database
from hanchang.web import routes as web_routes

NUL_MESSAGE = ("요청에 NUL 문자(\\u0000)가 들어 있어 처리할 수 없습니다. 지우고 다시 보내 주세요. "
               "(The request contains a NUL character, which no text field may hold; remove it.)")


class BodySizeLimit:
    """Refuse bodies over the configured size: by Content-Length before reading, and by the bytes
    actually read for bodies sent without one (chunked), so no body past the limit is accepted.
    Also refuse NUL characters outside file uploads: no text field may hold one (PostgreSQL
    cannot store it), so they are turned away at the door with a 400 instead of failing deep inside."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"Request body is larger than {self.max_bytes:,} bytes. Send less."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = error_response(413, self._too_large(), "invalid_request_error", "request_too_large")
                await response(scope, receive, send)
                return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await error_response(400, NUL_MESSAGE, "invalid_request_error", "invalid_request")(scope, receive, send)
            return
        received = 0
        kind = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
        binary = kind.startswith(b"multipart/")  # files may hold NULs
        nul_forms = (b"\x00", b"\\u0000", b"%00") if kind.startswith(b"application/x-www-form") \
            else (b"\x00", b"\\u0000")
        tail = b""

        async def counted():
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_bytes:  # answered 413 by the HTTP exception handler
                    raise StarletteHTTPException(413, self._too_large())
                window, tail = tail + body, body[-6:]
                if not binary and any(form in window for form in nul_forms):
                    raise StarletteHTTPException(400, NUL_MESSAGE)
            return message

        await self.app(scope, counted, send)


def create_app(settings: Settings, database: Database | None = None, *,
               warm_models: bool = False) -> FastAPI:
    """The application. `warm_models` (serve) starts the embedded models' engines at once."""
    db = database or Database(settings.resolved_database_url)
    registry = ModelRegistry(settings.model_specs(), settings.default_model)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        recorder = Recorder(db, checkpoints=CheckpointBook(settings.home))
        recorder.start()
        app.state.recorder = recorder
        limiter = create_limiter(settings.redis_url, settings.redis_prefix)
        sealer = PromptSealer(settings.audit.store_prompts_for, os.environ.get(settings.audit.key_env))
        app.state.gateway = Gateway(registry, limiter, settings.limits, recorder, settings.policy,
                                    settings.pii, sealer)
        # Embeddings (ingest and query) go through this same gateway: policy, guard, usage, audit.
        app.state.embedder = gateway_embedder(settings, app.state.gateway, asyncio.get_running_loop())
        if warm_models:
            await app.state.gateway.warm_up()
        try:
            yield
        finally:
            await app.state.gateway.aclose()
            await app.state.gateway.limiter.aclose()
            await recorder.aclose()
            if database is None:
                db.dispose()

    app = FastAPI(title="Hanchang 한창", version=__version__, lifespan=lifespan,
                  default_response_class=JSONResponse)
    app.state.settings = settings
    app.state.db = db
    app.state.authenticator = KeyAuthenticator(db)
    app.state.knowledge = IndexStore(settings.home, db)
    app.state.embedder = None  # set at start-up, once the gateway exists
    app.state.started_at = int(time.time())
    try:
        app.state.services = catalogue(SERVICES, settings.services.custom)
    except ServiceConflict as exc:
        raise ConfigError(f"services.custom / plugins: {exc}") from None
    install_error_handlers(app)
    app.include_router(openai_routes.router)
    app.include_router(knowledge_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(service_routes.router)
    app.include_router(service_routes.connector_router)
    app.include_router(web_routes.router)
    app.mount("/static", StaticFiles(directory=str(web_routes.HERE / "static")), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    async def readyz():
        report = await readiness(app.state.db, app.state.gateway)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app
