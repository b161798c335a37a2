"""Single sign-on through an agency's OpenID Connect provider: authorization code with PKCE.

`begin` keeps a sign-on attempt (state, PKCE verifier, nonce) in the database — so any host can
finish it — bound to the browser that started it (the hash of a random value that only that
browser holds, in a short-lived HttpOnly SameSite cookie), and gives the provider's sign-in
address. `finish` takes the provider's answer: the state must be one this browser started (an
answer carried to another browser — login CSRF — is refused), is used once and expires in
minutes; the code is exchanged for tokens (Authlib); the ID token's signature, issuer,
audience, expiry and nonce are checked against the provider's published keys (joserfc); its
claims give the agency and the role (config `oidc:`); the user is found by their identity
(issuer and subject, nothing else), or — only where an administrator allowed it and the
provider says the person is verified — linked by name to an account not yet linked at this
provider, or created; and the same session as a password sign-in starts, with its audit
records, in one transaction. Nothing the browser sends is trusted beyond the code, the state
and the binding cookie.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from hanchang.audit import trail
from hanchang.config import OidcConfig
from hanchang.core.principal import Principal, Role
from hanchang.store import accounts, changes
from hanchang.store.sessions import NewSession, start_session
from hanchang.store.tables import Agency, SignOnAttempt, User, UserIdentity, utcnow

ATTEMPT_TTL = timedelta(minutes=10)
DISCOVERY_TTL_S = 3600
TIMEOUT_S = 10.0
# When a user's provider roles map to several Hanchang roles, the strongest is kept.
ROLE_STRENGTH = {Role.USER: 0, Role.AUDITOR: 1, Role.AGENCY_ADMIN: 2, Role.PLATFORM_ADMIN: 3}
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class SignOnRefused(Exception):
    def __init__(self, message_ko: str, message_en: str):
        super().__init__(f"{message_ko} ({message_en})")
        self.message_ko, self.message_en = message_ko, message_en

    @property
    def message(self) -> str:
        return f"{self.message_ko} ({self.message_en})"


@dataclass(frozen=True)
class SignedOn:
    session: NewSession
    user_name: str
    agency_code: str
    created: bool


_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_key_sets: dict[str, Any] = {}


async def _get_json(url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.get(url, **kwargs)
            response.raise_for_status()
            return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SignOnRefused("기관 로그인 서버에 연결하지 못했습니다. 잠시 뒤 다시 시도하거나 관리자에게 알려 주세요.",
                            f"the identity provider did not answer ({type(exc).__name__})") from exc


async def metadata(config: OidcConfig) -> dict[str, Any]:
    """The provider's discovery document (cached for an hour); its issuer must be the configured one."""
    found = _discovered.get(config.issuer or "")
    if found and time.monotonic() - found[0] < DISCOVERY_TTL_S:
        return found[1]
    document = await _get_json(f"{config.issuer}/.well-known/openid-configuration")
    if str(document.get("issuer", "")).rstrip("/") != config.issuer:
        raise SignOnRefused("기관 로그인 서버 설정이 맞지 않습니다(issuer). 관리자에게 알려 주세요.",
                            f"the discovery document names issuer {document.get('issuer')!r}, not {config.issuer!r}")
    _discovered[config.issuer or ""] = (time.monotonic(), document)
    return document


def _binding_hash(binding: str | None) -> str:
    return hashlib.sha256((binding or "").encode()).hexdigest()


def new_binding(current: str | None) -> str:
    """The browser's binding value: the one its cookie holds (two tabs signing in at once both
    finish), or a new random one."""
    return current if current and 40 <= len(current) <= 64 and current.isascii() else secrets.token_urlsafe(32)


async def begin(db, config: OidcConfig, redirect_uri: str, binding: str) -> str:
    """Keep a new attempt, bound to the browser holding `binding`, and return the provider's
    sign-in address for it."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    document = await metadata(config)
    state, verifier, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(64), secrets.token_urlsafe(24)

    def keep() -> None:
        with db.session() as session:
            session.execute(delete(SignOnAttempt).where(SignOnAttempt.created_at < utcnow() - ATTEMPT_TTL))
            session.add(SignOnAttempt(state=state, code_verifier=verifier, nonce=nonce,
                                      browser_binding=_binding_hash(binding)))
    await run_in_threadpool(keep)
    client = AsyncOAuth2Client(client_id=config.client_id, redirect_uri=redirect_uri, scope=" ".join(config.scopes),
                               code_challenge_method="S256")
    url, _ = client.create_authorization_url(document["authorization_endpoint"], state=state, code_verifier=verifier,
                                             nonce=nonce)
    return url


async def finish(db, config: OidcConfig, redirect_uri: str, params: dict[str, str], binding: str | None) -> SignedOn:
    """The provider's answer (code, state) in the browser holding `binding` to a session, or
    SignOnRefused saying why."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    if params.get("error"):
        raise SignOnRefused(f"기관 로그인이 완료되지 않았습니다 ({params['error']}). 다시 시도해 주세요.",
                            f"the provider answered {params['error']}: {params.get('error_description', '')}"[:300])
    attempt = await run_in_threadpool(_take_attempt, db, params.get("state", ""), binding)
    document = await metadata(config)
    secret = os.environ.get(config.client_secret_env)
    try:
        async with AsyncOAuth2Client(client_id=config.client_id, client_secret=secret, redirect_uri=redirect_uri,
                                     token_endpoint_auth_method="client_secret_basic", timeout=TIMEOUT_S) as client:
            tokens = await client.fetch_token(document["token_endpoint"], code=params.get("code", ""),
                                              code_verifier=attempt.code_verifier, grant_type="authorization_code")
    except Exception as exc:  # an OAuth error answer or the network: the code was not exchanged
        raise SignOnRefused("기관 로그인 확인에 실패했습니다. 처음부터 다시 로그인해 주세요.",
                            f"the code exchange failed ({type(exc).__name__}: {exc})"[:300]) from exc
    id_token = tokens.get("id_token")
    if not id_token:
        raise SignOnRefused("기관 로그인 서버가 신원 토큰을 주지 않았습니다. 관리자에게 알려 주세요.",
                            "the token answer holds no id_token (is 'openid' among the scopes?)")
    claims = await _verified_claims(config, document, id_token, attempt.nonce)
    return await run_in_threadpool(_sign_on, db, config, claims, id_token)


def _take_attempt(db, state: str, binding: str | None) -> SignOnAttempt:
    """The attempt this state names, used up (deleted) now; refused if unknown, used, expired or
    started by another browser (left in place then: the browser that started it may still finish)."""
    with db.session() as session:
        attempt = session.get(SignOnAttempt, state) if state else None
        created = None if attempt is None else (  # SQLite gives the time back without its zone
            attempt.created_at if attempt.created_at.tzinfo else attempt.created_at.replace(tzinfo=UTC))
        if created is None or created < utcnow() - ATTEMPT_TTL:
            raise SignOnRefused("로그인 요청이 만료되었거나 이미 쓰였습니다. 처음부터 다시 로그인해 주세요.",
                                "unknown, used or expired sign-on state")
        if not binding or not secrets.compare_digest(attempt.browser_binding, _binding_hash(binding)):
            raise SignOnRefused("이 브라우저에서 시작한 로그인이 아닙니다. 한창 로그인 화면에서 처음부터 다시 "
                                "로그인해 주세요.", "the sign-on was not started in this browser")
        session.delete(attempt)
        return SignOnAttempt(state=attempt.state, code_verifier=attempt.code_verifier, nonce=attempt.nonce)


async def _verified_claims(config: OidcConfig, document: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    keys = _key_sets.get(document["jwks_uri"])
    for attempt in range(2):  # a key the cached set lacks: the provider rotated its keys; read them again
        if keys is None or attempt:
            keys = _key_sets[document["jwks_uri"]] = KeySet.import_key_set(await _get_json(document["jwks_uri"]))
        try:
            token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            break
        except JoseError as exc:
            if attempt:
                raise SignOnRefused("기관 로그인의 신원 토큰을 확인하지 못했습니다. 관리자에게 알려 주세요.",
                                    f"the ID token's signature does not verify ({exc})") from exc
    registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": config.issuer},
                                     aud={"essential": True, "value": config.client_id},
                                     exp={"essential": True}, sub={"essential": True},
                                     nonce={"essential": True, "value": nonce}, leeway=60)
    try:
        registry.validate(token.claims)
    except JoseError as exc:
        raise SignOnRefused("기관 로그인의 신원 토큰이 이 요청의 것이 아닙니다. 처음부터 다시 로그인해 주세요.",
                            f"the ID token's claims do not hold ({exc})") from exc
    return token.claims


def _role_of(config: OidcConfig, claims: dict[str, Any]) -> Role | None:
    """The role the provider's roles map to (None when the provider sends no role claim)."""
    if not config.role_claim or config.role_claim not in claims:
        return None
    given = claims[config.role_claim]
    given = [given] if isinstance(given, str) else [str(r) for r in given or ()]
    mapped = [Role(config.role_map[r]) for r in given if r in config.role_map]
    return max(mapped, key=ROLE_STRENGTH.__getitem__, default=Role.USER)


def _may_link(session, config: OidcConfig, claims: dict[str, Any], issuer: str, user: User, name: str) -> None:
    """A first sign-in meets an existing account of the same name: linked only where an
    administrator allowed it (oidc.link_by_username), the provider says the person is verified
    (oidc.link_verified_claim) and the account has no identity at this provider yet — a second
    subject calling itself by a linked user's name never gets that account."""
    linked_here = session.scalar(select(UserIdentity.id).where(UserIdentity.user_id == user.id,
                                                               UserIdentity.issuer == issuer))
    verified = config.link_verified_claim is None or claims.get(config.link_verified_claim) is True
    if config.link_by_username and verified and linked_here is None:
        return
    raise SignOnRefused(f"한창에 '{name}' 계정이 이미 있어 기관 로그인과 자동으로 연결하지 않았습니다. 관리자에게 "
                        "계정 연결을 요청하세요.",
                        f"an account {name!r} exists; it is linked to this sign-in only by an administrator "
                        "(oidc.link_by_username), for a verified person, if not linked already")


def _sign_on(db, config: OidcConfig, claims: dict[str, Any], id_token: str) -> SignedOn:
    issuer, subject = config.issuer or "", str(claims["sub"])
    name = str(claims.get(config.username_claim) or subject).strip()[:100]
    agency_code = str(claims.get(config.agency_claim) or config.default_agency or "").strip()
    role = _role_of(config, claims)
    with db.session() as session:
        identity = session.scalar(select(UserIdentity).where(UserIdentity.issuer == issuer,
                                                             UserIdentity.subject == subject))
        created, linked = False, identity is None
        if identity is not None:
            user = session.get(User, identity.user_id)
            agency = session.get(Agency, user.agency_id)
            if agency_code and agency_code != agency.code:  # moved agencies at the provider: an admin decides
                raise SignOnRefused(f"기관 로그인 정보의 기관({agency_code})이 한창 계정의 기관({agency.code})과 "
                                    "다릅니다. 관리자에게 계정 이전을 요청하세요.",
                                    f"the provider says agency {agency_code}; the linked account is in {agency.code}")
        else:
            agency = session.scalar(select(Agency).where(Agency.code == agency_code)) if agency_code else None
            if agency is None:
                raise SignOnRefused(f"기관 코드 '{agency_code or '(없음)'}'이(가) 한창에 등록되어 있지 않습니다. "
                                    "관리자에게 문의하세요.", f"agency {agency_code!r} is not on this platform")
            user = session.scalar(select(User).where(User.agency_id == agency.id, User.name == name))
            if user is not None:
                _may_link(session, config, claims, issuer, user, name)
            granted = role or Role.USER
            if user is not None and ROLE_STRENGTH[Role(user.role)] > ROLE_STRENGTH[granted]:
                # A name is not proof enough for more than the provider grants: never hand an admin
                # account to whoever the provider calls by that name.
                raise SignOnRefused(f"'{name}' 계정은 {Role(user.role).value} 권한이라 이름만으로 기관 "
                                    "로그인에 연결하지 않습니다. 관리자에게 문의하세요.",
                                    f"the account {name!r} holds {user.role}, more than the provider grants "
                                    f"({granted.value}); it is not linked by name")
            if user is None:
                if not config.create_users:
                    raise SignOnRefused("한창 계정이 아직 없습니다. 관리자에게 계정 생성을 요청하세요.",
                                        f"no user {name!r} in {agency.code}, and oidc.create_users is off")
                user, created = accounts.create_user(session, agency.code, name, role or Role.USER), True
            identity = UserIdentity(user_id=user.id, issuer=issuer, subject=subject)
            session.add(identity)
        if user.disabled:
            raise SignOnRefused("이 계정은 사용이 중지되었습니다. 관리자에게 문의하세요.", "the account is disabled")
        changed_role = role is not None and role.value != user.role
        if changed_role:
            previous, user.role = user.role, role.value
            changes.announce(session, changes.KEYS)  # the user's API keys carry the new role at once
        identity.last_login_at = utcnow()
        session.flush()
        principal = Principal(user.id, user.name, agency.id, agency.code, Role(user.role), None)
        detail = {"issuer": issuer, "subject": subject}
        if created:
            trail.record_by(session, principal, "users.create", {**detail, "by": "sso", "role": user.role})
        elif linked:
            trail.record_by(session, principal, "identities.link", detail)
        if changed_role:
            trail.record_by(session, principal, "users.role", {**detail, "from": previous, "to": user.role,
                                                               "by": "sso"})
        trail.record_by(session, principal, "auth.sso_login", detail, category="auth")
        new = start_session(session, user.id, id_token)
        return SignedOn(new, user.name, agency.code, created)


async def logout_url(config: OidcConfig, id_token: str, return_to: str) -> str | None:
    """The provider's end-session address for a session signed in by SSO (RP-initiated logout)."""
    try:
        document = await metadata(config)
    except SignOnRefused:
        return None
    endpoint = document.get("end_session_endpoint")
    if not endpoint:
        return None
    return endpoint + "?" + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": return_to,
                                       "client_id": config.client_id})

