"""Agencies, users and API keys: create, list, revoke, authenticate.

API keys are 256-bit random secrets, so a fast hash (SHA-256) is the right store:
a slow KDF protects guessable passwords, not random keys (ADR 0002). Passwords use Argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.core.permissions import may_hold_role
from hanchang.core.principal import Principal, Role
from hanchang.store import changes
from hanchang.store.tables import Agency, ApiKey, User, utcnow

KEY_PREFIX = "hc"
_password_hasher = PasswordHasher()


class AccountError(Exception):
    """A request about agencies, users or keys cannot be done; the message says why."""


@dataclass(frozen=True)
class IssuedKey:
    id: int
    secret: str  # shown once, never stored
    prefix: str
    user_name: str
    agency_code: str
    role: Role


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(secret: str) -> str | None:
    """Return the lookup prefix of a well-formed key, or None."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or len(parts[2]) < 32:
        return None
    return parts[1]


def get_agency(session: Session, code: str) -> Agency:
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise AccountError(
            f"agency '{code}' does not exist; create it with: hanchang agencies create {code} --name NAME"
        )
    return agency


def create_agency(session: Session, code: str, name: str) -> Agency:
    code = code.strip()
    if not code or not all(c.isalnum() or c in "-_" for c in code) or len(code) > 32:
        raise AccountError(f"agency code {code!r} must be 1–32 letters, digits, '-' or '_'")
    if not name.strip():
        raise AccountError("agency name must not be empty")
    if session.scalar(select(Agency).where(Agency.code == code)) is not None:
        raise AccountError(f"agency '{code}' already exists")
    agency = Agency(code=code, name=name.strip())
    session.add(agency)
    session.flush()
    return agency


def get_user(session: Session, agency_code: str, user_name: str) -> User:
    agency = get_agency(session, agency_code)
    user = session.scalar(select(User).where(User.agency_id == agency.id, User.name == user_name))
    if user is None:
        raise AccountError(
            f"user '{user_name}' does not exist in agency '{agency_code}'; create it with: "
            f"hanchang users create --user {user_name} --agency {agency_code}"
        )
    return user


def create_user(
    session: Session, agency_code: str, user_name: str, role: Role = Role.USER,
    password: str | None = None,
) -> User:
    user_name = user_name.strip()
    if not user_name or len(user_name) > 100:
        raise AccountError("user name must be 1–100 characters")
    agency = get_agency(session, agency_code)
    if session.scalar(select(User).where(User.agency_id == agency.id, User.name == user_name)):
        raise AccountError(f"user '{user_name}' already exists in agency '{agency_code}'")
    user = User(agency_id=agency.id, name=user_name, role=role.value, disabled=False,
                password_hash=hash_password(password) if password else None)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise AccountError(f"user '{user_name}' already exists in agency '{agency_code}'") from exc
    return user


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AccountError("password must be at least 8 characters")
    return _password_hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and verify_hash(user.password_hash, password)


def verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_key(
    session: Session, agency_code: str, user_name: str, role: Role | None = None,
    label: str | None = None,
) -> IssuedKey:
    user = get_user(session, agency_code, user_name)
    if user.disabled:
        raise AccountError(f"user '{user_name}' is disabled")
    key_role = role or Role(user.role)
    if not may_hold_role(Role(user.role), key_role):
        raise AccountError(
            f"user '{user_name}' has role '{user.role}'; a key cannot carry role '{key_role.value}'"
        )
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(user_id=user.id, agency_id=user.agency_id, role=key_role.value, prefix=prefix,
                 key_hash=_hash_key(secret), label=label)
    session.add(key)
    session.flush()
    return IssuedKey(key.id, secret, prefix, user.name, agency_code, key_role)


def list_keys(session: Session, agency_code: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).join(ApiKey.agency).join(ApiKey.user).order_by(ApiKey.id)
    if agency_code:
        query = query.where(Agency.code == agency_code)
    keys = list(session.scalars(query))
    for key in keys:  # load for display after the session closes
        _ = key.user.name, key.agency.code
    return keys


def revoke_key(session: Session, key_id_or_prefix: str) -> ApiKey:
    query = select(ApiKey)
    if key_id_or_prefix.isdigit():
        query = query.where(ApiKey.id == int(key_id_or_prefix))
    else:
        query = query.where(ApiKey.prefix == (split_key(key_id_or_prefix) or key_id_or_prefix))
    key = session.scalar(query)
    if key is None:
        raise AccountError(f"no API key with id or prefix '{key_id_or_prefix}' (see: hanchang keys list)")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        changes.announce(session, changes.KEYS)  # every server drops its cached principals on commit
    return key


def authenticate_key(session: Session, secret: str) -> Principal | None:
    """The principal a key stands for, or None if the key is unknown, revoked or disabled."""
    prefix = split_key(secret)
    if prefix is None:
        return None
    row = session.execute(
        select(ApiKey, User, Agency)
        .join(User, ApiKey.user_id == User.id)
        .join(Agency, ApiKey.agency_id == Agency.id)
        .where(ApiKey.prefix == prefix)
    ).first()
    if row is None:
        return None
    key, user, agency = row
    if not hmac.compare_digest(key.key_hash, _hash_key(secret)):
        return None
    if key.revoked_at is not None or user.disabled:
        return None
    return Principal(user.id, user.name, agency.id, agency.code, Role(key.role), key.id)


def touch_keys(session: Session, last_used: dict[int, datetime]) -> None:
    """Record when keys were last used (batched by the caller)."""
    for key_id, when in last_used.items():
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
