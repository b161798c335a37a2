"""`hanchang agencies|users|keys …`: accounts (기관·사용자·API 키)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from hanchang.cli.common import audit_admin, err, fail, open_database, out, parse_role, settings_or_exit
from hanchang.core.principal import Role
from hanchang.store import accounts
from hanchang.store.accounts import AccountError

agencies_app = typer.Typer(help="Agencies (기관).", no_args_is_help=True)
users_app = typer.Typer(help="Users (사용자).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (API 키): shown once, stored hashed; and the agencies' encryption keys "
                       "(암호 키): status, rotate, sweep, shred.", no_args_is_help=True)


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
