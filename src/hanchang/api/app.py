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


class BodySizeLimit:
    """Refuse bodies over the configured size: by Content-Length before reading, and by the bytes
    actually read for bodies sent without one (chunked), so no body past the limit is accepted."""

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
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # answered 413 by the HTTP exception handler
                    raise StarletteHTTPException(413, self._too_large())
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
