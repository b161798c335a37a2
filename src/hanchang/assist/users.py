"""Users administered from the window: list and create, within the admin's reach, audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hanchang.audit import trail
from hanchang.core.errors import AlreadyExists, NotAllowed
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal, Role
from hanchang.store import accounts
from hanchang.store.tables import Agency, User


def listing(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The users an admin may see: their agency's (every agency's for a platform admin)."""
    require(principal, "users.list")
    query = select(User, Agency).join(Agency).order_by(Agency.code, User.name)
    if not can(principal, SEE_EVERY_AGENCY):
        query = query.where(User.agency_id == principal.agency_id)
    return [{"agency": a.code, "user": u.name, "role": u.role} for u, a in session.execute(query)]


def create(session: Session, principal: Principal, name: str, role_name: str, password: str) -> dict[str, Any]:
    """A user of the admin's agency, with a role the admin may give; recorded in the same transaction."""
    require(principal, "users.create")
    try:
        role = Role.parse(role_name)
    except ValueError as exc:
        raise NotAllowed(f"알 수 없는 역할입니다: {role_name}", str(exc)) from None
    require(principal, "users.grant", role)
    try:
        created = accounts.create_user(session, principal.agency_code, name, role, password)
    except accounts.AccountError as exc:
        raise AlreadyExists(f"사용자를 만들 수 없습니다: {exc}", str(exc)) from None
    trail.record_by(session, principal, "users.create", {"user": created.name, "role": created.role})
    return {"agency": principal.agency_code, "user": created.name, "role": created.role}
