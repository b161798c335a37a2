"""Bearer API keys -> Principal, with a short in-memory cache on the hot path.

The cache holds results by the key's SHA-256 digest (never the key itself) for a few
seconds, so a revoked key stops working within `KEY_CACHE_TTL_S` in every worker.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from hanchang.core.principal import Principal
from hanchang.http.errors import AuthError, CsrfError
from hanchang.store import sessions
from hanchang.store.accounts import authenticate_key
from hanchang.store.db import Database

KEY_CACHE_TTL_S = 5.0
_MAX_CACHED = 10_000


class KeyAuthenticator:
    def __init__(self, db: Database, ttl_s: float = KEY_CACHE_TTL_S):
        self._db = db
        self._ttl = ttl_s
        self._cache: OrderedDict[bytes, tuple[Principal | None, float]] = OrderedDict()

    def _lookup(self, secret: str) -> Principal | None:
        with self._db.session() as session:
            return authenticate_key(session, secret)

    async def principal(self, secret: str) -> Principal | None:
        digest = hashlib.sha256(secret.encode()).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await run_in_threadpool(self._lookup, secret)
        self._cache[digest] = (principal, now + self._ttl)
        self._cache.move_to_end(digest)
        while len(self._cache) > _MAX_CACHED:
            self._cache.popitem(last=False)
        return principal

    def forget(self) -> None:
        self._cache.clear()


_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _session_principal(request: Request, token: str) -> Principal:
    with request.app.state.platform.db.session() as session:
        found = sessions.principal_for(session, token)
    if found is None:
        raise AuthError("로그인이 만료되었습니다. 다시 로그인하세요.", "Your session has ended; sign in again.")
    principal, csrf = found
    sent = request.headers.get("x-csrf-token", "")
    if request.method in _UNSAFE and not hmac.compare_digest(sent, csrf):
        raise CsrfError("요청을 확인할 수 없습니다. 페이지를 새로 고친 뒤 다시 시도하세요.",
                        "CSRF token missing or wrong; reload the page.")
    return principal


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller behind `Authorization: Bearer <key>` or a window session."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    token = request.cookies.get(sessions.COOKIE)
    if not header and token:
        return await run_in_threadpool(_session_principal, request, token)
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthError(
            "API 키가 없습니다. 'Authorization: Bearer <키>' 헤더로 보내세요. 키는 관리자가 만듭니다.",
            "No API key was sent. Send 'Authorization: Bearer <key>'; an administrator creates "
            "keys with 'hanchang keys create'.")
    principal = await request.app.state.authenticator.principal(secret.strip())
    if principal is None:
        raise AuthError("API 키가 맞지 않거나 폐기되었습니다. 관리자에게 새 키를 요청하세요.",
                        "The API key is invalid or has been revoked. Ask your administrator for a new key.")
    return principal
