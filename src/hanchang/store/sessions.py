"""Browser sign-in: Argon2id passwords, server-side sessions, CSRF tokens, lockout.

The cookie carries a random token; only its SHA-256 is stored. Every unsafe request made
with a session must echo the session's CSRF token in `X-CSRF-Token`. Five failed sign-ins
lock the account name for 15 minutes, whether or not the user exists (no enumeration).
Single sign-on (assist/sign_on.py) proves the user at an agency's OpenID provider instead and
starts the same kind of session (`start_session`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hanchang.core.principal import Principal, Role
from hanchang.store.accounts import hash_password, verify_hash
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


def _attempt_key(agency_code: str, user_name: str) -> str:
    """Attempted names are kept only as a digest: a mistyped password in the name box stays secret."""
    return hashlib.sha256(f"{agency_code}\x00{user_name}".encode()).hexdigest()


def _locked_for(failure: LoginFailure | None, now: datetime) -> SignInRefused | None:
    if failure and failure.locked_until and _aware(failure.locked_until) > now:
        minutes = max(1, int((_aware(failure.locked_until) - now).total_seconds() // 60) + 1)
        return SignInRefused(f"로그인 실패가 반복되어 잠겼습니다. {minutes}분 뒤에 다시 시도하세요. "
                             f"(Locked after repeated failures; try again in {minutes} min.)", locked=True)
    return None


WRONG = "기관, 사용자 이름 또는 암호가 맞지 않습니다. (Agency, user name or password is wrong.)"
BUSY = ("로그인 요청이 몰려 지금 처리할 수 없습니다. 잠시 뒤 다시 시도하세요. "
        "(Too many sign-ins at once; try again shortly.)")
# Argon2 takes ~50-250 ms of CPU: a burst of sign-ins may use two threads, never the whole server.
_HASHING = threading.BoundedSemaphore(2)
_HASH_WAIT_S = 10.0
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # unknown users cost the same time


def _password_ok(password_hash: str | None, password: str) -> bool | None:
    """Verify with bounded concurrency; None when the server is too busy to try."""
    if not _HASHING.acquire(timeout=_HASH_WAIT_S):
        return None
    try:
        return verify_hash(password_hash or _DUMMY_HASH, password) and password_hash is not None
    finally:
        _HASHING.release()


def sign_in(db, agency_code: str, user_name: str, password: str) -> NewSession | SignInRefused:
    """A new session, or the refusal. Three short transactions around the password check, so a
    slow hash never holds a database lock; the failure count goes up atomically."""
    agency_code, user_name = agency_code.strip()[:32], user_name.strip()[:100]
    key = _attempt_key(agency_code, user_name)
    with db.session() as session:
        failure = session.scalar(select(LoginFailure).where(LoginFailure.agency_code == agency_code,
                                                            LoginFailure.user_name == key))
        if refused := _locked_for(failure, utcnow()):
            return refused
        user = session.scalar(select(User).join(Agency).where(Agency.code == agency_code, User.name == user_name))
        user_id = user.id if user is not None and not user.disabled else None
        password_hash = user.password_hash if user_id is not None else None
    verdict = _password_ok(password_hash, password)
    if verdict is None:
        return SignInRefused(BUSY)
    with db.session() as session:
        if not verdict:
            _count_failure(session, agency_code, key)
            return SignInRefused(WRONG)
        failure = session.scalar(select(LoginFailure).where(LoginFailure.agency_code == agency_code,
                                                            LoginFailure.user_name == key).with_for_update())
        if refused := _locked_for(failure, utcnow()):  # locked by parallel guesses meanwhile
            return refused
        if failure is not None:
            session.delete(failure)
        return start_session(session, user_id)


def start_session(session: Session, user_id: int, id_token: str | None = None) -> NewSession:
    """A new browser session for a user who has proved who they are (password or SSO)."""
    now = utcnow()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires = now + timedelta(hours=SESSION_HOURS)
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.add(WebSession(token_hash=_digest(token), user_id=user_id, csrf_token=csrf, expires_at=expires,
                           id_token=id_token))
    return NewSession(token, csrf, expires)


def _count_failure(session: Session, agency_code: str, key: str) -> None:
    """failures += 1 in one statement (no lost updates); lock the name at MAX_FAILURES."""
    where = (LoginFailure.agency_code == agency_code, LoginFailure.user_name == key)
    count = session.scalar(update(LoginFailure).where(*where).values(failures=LoginFailure.failures + 1)
                           .returning(LoginFailure.failures))
    if count is None:
        try:
            with session.begin_nested():
                session.add(LoginFailure(agency_code=agency_code, user_name=key, failures=1))
            count = 1
        except IntegrityError:  # a parallel failure created it first
            count = session.scalar(update(LoginFailure).where(*where)
                                   .values(failures=LoginFailure.failures + 1).returning(LoginFailure.failures))
    if count >= MAX_FAILURES:
        session.execute(update(LoginFailure).where(*where).values(locked_until=utcnow() + LOCKOUT, failures=0))


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


def sign_out(session: Session, token: str) -> str | None:
    """End the session; the ID token it was signed in with by SSO (for the provider's logout)."""
    return session.scalar(delete(WebSession).where(WebSession.token_hash == _digest(token))
                          .returning(WebSession.id_token))
