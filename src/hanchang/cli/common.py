"""What every `hanchang` command shares: consoles, settings, database, errors, dates."""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hanchang.config import ConfigError, Settings, load_settings
from hanchang.core.principal import Principal, Role

out = Console()
err = Console(stderr=True, soft_wrap=True)
state: dict[str, Path | None] = {"config": None}  # the global --config option

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config file "
                         "(default: $HANCHANG_CONFIG).", show_default=False)]


def settings_or_exit(config: Path | None = None, **overrides) -> Settings:
    try:
        return load_settings(config or state["config"], **overrides)
    except ConfigError as exc:
        err.print(f"[red]Configuration error[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def open_database(settings: Settings):
    """The database, migrated, with its keyring: a missing or wrong key file stops here (exit 2)."""
    from hanchang.bootstrap import prepare_database
    from hanchang.store.key_providers import KeyFileProblem

    try:
        return prepare_database(settings)
    except KeyFileProblem as exc:
        err.print(f"[red]Cannot start: encryption keys 암호 키 문제[/red] {exc.message}", markup=True,
                  highlight=False)
        raise typer.Exit(2) from None


def operator() -> str:
    """Who runs the CLI, for the audit trail of admin actions."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def audit_admin(session, action: str, agency: str | None, **detail) -> None:
    from hanchang.audit import trail

    trail.append(session, [trail.admin_entry(action, operator(), agency, detail)])


def fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def parse_role(value: str | None) -> Role | None:
    try:
        return Role.parse(value) if value else None
    except ValueError as exc:
        raise fail(str(exc)) from None




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


def acting_user(session, agency: str, user: str) -> Principal:
    """A command that acts as a named user of an agency, with that user's rights."""
    from hanchang.store import accounts

    found = accounts.get_user(session, agency, user)
    owner = accounts.get_agency(session, agency)
    return Principal(found.id, found.name, owner.id, owner.code, Role.parse(found.role))
