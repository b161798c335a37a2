"""Browser sign-in: Argon2id passwords, server-side sessions, CSRF tokens, lockout.

The cookie carries a random token; only its SHA-256 is stored. Every unsafe request made
with a session must echo the session's CSRF token in `X-CSRF-Token`. Five failed sign-ins
lock the account name for 15 minutes, whether or not the user exists (no enumeration).
An SSO (OIDC) provider would plug in beside `sign_in` and create the same kind of session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hanchang.core.principal import Principal, Role
from hanchang.store.accounts import verify_password
from hanchang.store.tables import Agency, LoginFailure, User, WebSession, utcnow

COOKIE = "hanchang_session"
SESSION_HOURS = 12
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


class SignInRefused(Exception):
    def __init__(self, message_ko: str, locked: bool = False):
        super().__init__(message_ko)
        self.message_ko = message_ko
        self.locked = locked


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def sign_in(session: Session, agency_code: str, user_name: str, password: str) -> NewSession | SignInRefused:
    """A new session, or the refusal (returned, not raised, so the failure count commits)."""
    agency_code, user_name = agency_code.strip(), user_name.strip()
    failure = session.scalar(select(LoginFailure).where(LoginFailure.agency_code == agency_code,
                                                        LoginFailure.user_name == user_name))
    now = utcnow()
    if failure and failure.locked_until and _aware(failure.locked_until) > now:
        minutes = max(1, int((_aware(failure.locked_until) - now).total_seconds() // 60) + 1)
        return SignInRefused(f"로그인 실패가 반복되어 잠겼습니다. {minutes}분 뒤에 다시 시도하세요. "
                            f"(Locked after repeated failures; try again in {minutes} min.)", locked=True)
    user = session.scalar(select(User).join(Agency).where(Agency.code == agency_code,
                                                          User.name == user_name))
    if user is None or user.disabled or not verify_password(user, password):
        if failure is None:
            failure = LoginFailure(agency_code=agency_code, user_name=user_name, failures=0)
            session.add(failure)
        failure.failures += 1
        if failure.failures >= MAX_FAILURES:
            failure.locked_until, failure.failures = now + LOCKOUT, 0
        return SignInRefused("기관, 사용자 이름 또는 암호가 맞지 않습니다. "
                            "(Agency, user name or password is wrong.)")
    if failure is not None:
        session.delete(failure)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires = now + timedelta(hours=SESSION_HOURS)
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=csrf, expires_at=expires))
    return NewSession(token, csrf, expires)


def principal_for(session: Session, token: str) -> tuple[Principal, str] | None:
    """The signed-in principal and the session's CSRF token, or None."""
    row = session.execute(
        select(WebSession, User, Agency).join(User, User.id == WebSession.user_id)
        .join(Agency, Agency.id == User.agency_id).where(WebSession.token_hash == _digest(token))
    ).first()
    if row is None:
        return None
    web, user, agency = row
    if _aware(web.expires_at) <= utcnow() or user.disabled:
        return None
    return Principal(user.id, user.name, agency.id, agency.code, Role(user.role), None), web.csrf_token


def sign_out(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))
