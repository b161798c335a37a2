"""The composition root: builds the platform from Settings and mounts its two doors.

`api` (the OpenAI-compatible `/v1` and the `/api` resources) and `web` (the window) are
routers over the same `Platform`; neither imports the other. Everything long-lived (database,
gateway with its limiter and engines, recorder, embedder) is made here and closed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hanchang import __version__
from hanchang.api import (
    asset_routes,
    audit_routes,
    eval_routes,
    knowledge_routes,
    mcp_endpoint,
    openai_routes,
    operations_routes,
    responses_routes,
    service_routes,
    training_routes,
)
from hanchang.api.readiness import readiness
from hanchang.assist.embedding_calls import gateway_embedder
from hanchang.assist.platform import Platform
from hanchang.assist.sealing_sweep import SealingSweeper
from hanchang.assist.services import SERVICES
from hanchang.assist.services.base import Service
from hanchang.assist.services.custom import ServiceConflict, catalogue
from hanchang.audit import metrics
from hanchang.audit.checkpoints import CheckpointBook
from hanchang.audit.recorder import Recorder
from hanchang.audit.trail import PromptSealer, integrity_failure_entry
from hanchang.bootstrap import open_keyring
from hanchang.config import ConfigError, Settings
from hanchang.evals.runner import EvalRunner
from hanchang.gateway.limits import create_limiter
from hanchang.gateway.quotas import BudgetPlan, create_quota_store
from hanchang.gateway.registry import ModelRegistry
from hanchang.gateway.router import Gateway
from hanchang.http.auth import KeyAuthenticator
from hanchang.http.body_limit import BodySizeLimit
from hanchang.http.errors import install_error_handlers
from hanchang.http.responses import JSONResponse
from hanchang.knowledge.embedder import acting
from hanchang.knowledge.index_store import IndexStore
from hanchang.knowledge.ingest_jobs import IngestJobRunner
from hanchang.ops.budgets import overrides_loader
from hanchang.ops.health import HealthSampler
from hanchang.store import changes
from hanchang.store.db import Database
from hanchang.training import models as trained_models
from hanchang.training.runner import TrainingWorker, worker_settings_file
from hanchang.web import routes as web_routes


@asynccontextmanager
async def running_platform(settings: Settings, db: Database, services: dict[str, Service], *,
                           warm_models: bool = False, run_evals: bool = True) -> AsyncIterator[Platform]:
    """The platform, from start-up to shutdown (the recorder flushes and engines stop on exit)."""
    recorder = Recorder(db, checkpoints=CheckpointBook(settings.home))
    recorder.start()
    limiter = create_limiter(settings.redis_url, settings.redis_prefix)
    quotas = create_quota_store(settings.redis_url, settings.redis_prefix)
    sealer = PromptSealer(settings.audit.store_prompts_for, os.environ.get(settings.audit.key_env))
    configured = settings.model_specs()
    registry = ModelRegistry(configured, settings.default_model,
                             added=lambda: trained_models.specs(db, configured, settings.home,
                                                                settings.training.serve_on))
    gateway = Gateway(registry, limiter, settings.limits,
                      recorder, settings.policy, settings.pii, sealer,
                      budget_plan=BudgetPlan(settings.budgets, overrides_loader(db), refresh_s=settings.cache_seconds),
                      quota_store=quotas)
    loop = asyncio.get_running_loop()
    if db.keyring is not None:  # a stored value that fails to open is audited (through the recorder)
        db.keyring.on_integrity_failure = lambda agency_id, where: loop.call_soon_threadsafe(
            recorder.record, None, integrity_failure_entry(db.keyring.agency_code(agency_id), where))
    health = HealthSampler(db, gateway, settings.metrics.health_probe_seconds)
    health.start()
    metrics_writer = asyncio.create_task(metrics.flush_periodically(), name="metrics-flush")
    jobs = evals = sweeper = trainer = None
    try:
        # Embeddings (ingest and query) go through this same gateway: policy, guard, usage, audit.
        embedder = gateway_embedder(settings, gateway, asyncio.get_running_loop())
        indexes = IndexStore(settings.home, db, settings.knowledge.index)
        jobs = IngestJobRunner(db, indexes, settings.home,
                               lambda principal: acting(embedder, principal, "embeddings.ingest")).start()
        platform = Platform(settings, db, gateway, indexes, embedder, services, recorder, int(time.time()), jobs)
        if run_evals:
            platform.eval_runs = evals = EvalRunner(platform).start()
            # Seals what older data or a rotation left behind; tests that start many platforms skip it.
            sweeper = SealingSweeper(db, db.keyring, settings.encryption.sweep_seconds).start()
            if settings.training.run_jobs:  # fine-tuning jobs, each in a process of its own
                trainer = TrainingWorker(db, settings.home, worker_settings_file(settings),
                                         threads=settings.training.threads).start()
        if warm_models:
            await gateway.warm_up()
        yield platform
    finally:
        if db.keyring is not None:
            db.keyring.on_integrity_failure = None  # its loop and recorder stop here
        if sweeper is not None:
            await asyncio.to_thread(sweeper.stop)
        if trainer is not None:  # a job in hand keeps its process, which finishes it
            await asyncio.to_thread(trainer.stop)
        if evals is not None:  # the run in hand goes back to the queue; it resumes at the next start
            await evals.stop()
        if jobs is not None:  # the job in hand goes back to the queue; it resumes at the next start
            await asyncio.to_thread(jobs.stop)
        metrics_writer.cancel()  # it flushes once more as it stops
        with contextlib.suppress(asyncio.CancelledError):
            await metrics_writer
        await health.aclose()
        await gateway.aclose()
        await limiter.aclose()
        await quotas.aclose()
        await recorder.aclose()


def unsafe_for_workers(settings: Settings) -> str | None:
    """Why this configuration cannot run in several worker processes (None when it can)."""
    if settings.resolved_database_url.startswith("sqlite"):
        return ("Several workers need PostgreSQL (database_url / HANCHANG_DATABASE_URL): SQLite is for one "
                "process on one host.")
    if not settings.redis_url:
        return ("Rate limits and budgets would be counted in each worker alone: set redis_url "
                "(HANCHANG_REDIS_URL) so every worker counts in one place.")
    embedded = [m.name for m in settings.model_specs() if m.backend == "llamacpp"]
    if embedded:
        return (f"The embedded model ({', '.join(embedded)}) runs one engine per server process: serve with "
                "--workers 1, or put the model on a model server (vLLM, llama.cpp server) as an openai backend.")
    return None


def own_logging(level: str) -> None:
    """Hanchang's logging, set before anything else can: libraries that call basicConfig (the MCP
    SDK does, with INFO and a Rich handler) then leave the root logger as it is here."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hanchang").setLevel(level.upper())


def app_for_workers() -> FastAPI:
    """The application in each worker of `hanchang serve --workers N` (a uvicorn factory): the settings
    come from the environment `serve` prepared (HANCHANG_CONFIG, HANCHANG_*, the metrics directory)."""
    from hanchang.config import load_settings

    settings = load_settings()
    own_logging(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings, database: Database | None = None, *,
               warm_models: bool = False) -> FastAPI:
    """The application. `warm_models` (serve) starts the embedded models' engines at once."""
    db = database or Database(settings.resolved_database_url)
    try:
        services = catalogue(SERVICES, settings.services.custom)
    except ServiceConflict as exc:
        raise ConfigError(f"services.custom / plugins: {exc}") from None
    open_keyring(settings, db)  # after the configuration checks; a wrong key file stops here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            async with running_platform(settings, db, services, warm_models=warm_models) as platform, \
                    (mcp.session_manager.run() if mcp is not None else contextlib.nullcontext()):
                app.state.platform = platform
                listener = None
                if db.engine.dialect.name == "postgresql":  # changes made elsewhere apply here at once
                    listener = changes.ChangeListener(settings.resolved_database_url, {
                        changes.KEYS: app.state.authenticator.forget,
                        changes.BUDGETS: platform.gateway.budget_plan.invalidate,
                    }, asyncio.get_running_loop()).start()
                app.state.changes = listener
                try:
                    yield
                finally:
                    if listener is not None:
                        await asyncio.to_thread(listener.stop)
        finally:
            if database is None:
                db.dispose()

    app = FastAPI(title="Hanchang 한창", version=__version__, lifespan=lifespan,
                  default_response_class=JSONResponse)
    app.state.authenticator = KeyAuthenticator(db, ttl_s=settings.cache_seconds)
    install_error_handlers(app)
    for router in (openai_routes.router, responses_routes.router, eval_routes.router, training_routes.router,
                   knowledge_routes.router, audit_routes.router, service_routes.router, service_routes.connector_router,
                   operations_routes.router, asset_routes.router, web_routes.router):
        app.include_router(router)
    mcp = mcp_endpoint.mount(app, settings.mcp) if settings.mcp.enabled else None
    app.mount("/static", StaticFiles(directory=str(web_routes.STATIC)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    async def readyz():
        report = await readiness(db, app.state.platform.gateway)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app
