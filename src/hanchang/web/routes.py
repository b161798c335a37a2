"""The window's pages and the JSON/SSE endpoints only it uses (all under the session)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hanchang import __version__
from hanchang.assist import conversation_turns, conversations, sign_on, users
from hanchang.core.errors import NotFound
from hanchang.core.grades import Grade
from hanchang.core.permissions import SEE_EVERY_AGENCY, can, require
from hanchang.core.principal import Principal
from hanchang.http.auth import require_principal
from hanchang.http.deps import platform_of
from hanchang.http.responses import JSONResponse
from hanchang.http.types import DbId, GradeIn
from hanchang.knowledge.search import open_passage
from hanchang.ops.overview import visible_agencies
from hanchang.store import sessions

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter()

# -- pages ------------------------------------------------------------------------------
# Only our own scripts and styles run; charts arrive as data: images; the window is never framed.
SSO_CALLBACK = "/auth/oidc/callback"
SSO_BINDING_COOKIE = "hanchang_sso"  # binds a sign-on attempt to the browser that started it


def _binding_cookie(request: Request) -> tuple[str, str]:
    """The binding cookie's name and path. Behind HTTPS it is a `__Host-` cookie: a sibling
    subdomain cannot set it in the victim's browser (cookie tossing), so its value is the one
    this platform gave."""
    if platform_of(request).settings.cookie_secure:
        return "__Host-" + SSO_BINDING_COOKIE, "/"
    return SSO_BINDING_COOKIE, "/auth/oidc/"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def _signed_in(request: Request) -> tuple[Principal, str] | None:
    token = request.cookies.get(sessions.COOKIE)
    if not token:
        return None

    def lookup():
        with platform_of(request).db.session() as session:
            return sessions.principal_for(session, token)
    return await run_in_threadpool(lookup)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request):
    found = await _signed_in(request)
    if found is None:
        return _login_page(request)
    principal, csrf = found
    return templates.TemplateResponse(request, "app.html", {
        "csrf": csrf, "user": principal.user_name, "agency": principal.agency_code,
        "role": principal.role.value, "is_admin": can(principal, "window.admin_pages"), "version": __version__},
        headers=PAGE_HEADERS)


def _page(request: Request, template: str, principal: Principal, csrf: str, **context: Any) -> HTMLResponse:
    """A signed-in page of the window: who is signed in, the CSRF token, the page's own context."""
    return templates.TemplateResponse(request, template, {
        "csrf": csrf, "user": principal.user_name, "agency": principal.agency_code, "version": __version__,
        **context}, headers=PAGE_HEADERS)


@router.get("/ops", response_class=HTMLResponse, include_in_schema=False)
async def operations_page(request: Request):
    """The operations page (운영 현황) for platform and agency admins."""
    if (found := await _signed_in(request)) is None:
        return RedirectResponse("/", status_code=303)
    principal, csrf = found
    require(principal, "operations.read")
    agencies = await run_in_threadpool(visible_agencies, platform_of(request).db, principal)
    return _page(request, "ops.html", principal, csrf, agencies=agencies,
                 platform_admin=can(principal, SEE_EVERY_AGENCY))


@router.get("/evals", response_class=HTMLResponse, include_in_schema=False)
async def evals_page(request: Request):
    """Evaluation runs and their paired comparison (평가), for admins."""
    if (found := await _signed_in(request)) is None:
        return RedirectResponse("/", status_code=303)
    principal, csrf = found
    require(principal, "window.admin_pages")
    return _page(request, "evals.html", principal, csrf)


@router.get("/library", response_class=HTMLResponse, include_in_schema=False)
async def library_page(request: Request):
    """Agents and the common asset library (에이전트 · 공유 자산), for every signed-in user."""
    if (found := await _signed_in(request)) is None:
        return RedirectResponse("/", status_code=303)
    principal, csrf = found
    return _page(request, "library.html", principal, csrf, reviewer=can(principal, "assets.review"),
                 may_build=can(principal, "agents.create"),
                 review_required=platform_of(request).settings.library.review_required)


@router.get("/checklist", response_class=HTMLResponse, include_in_schema=False)
async def checklist_page(request: Request):
    """The adoption checklist (도입 체크리스트, guideline 3.3) of the caller's agency."""
    if (found := await _signed_in(request)) is None:
        return RedirectResponse("/", status_code=303)
    principal, csrf = found
    every = can(principal, SEE_EVERY_AGENCY)
    agencies = await run_in_threadpool(visible_agencies, platform_of(request).db, principal) if every else []
    return _page(request, "checklist.html", principal, csrf, agencies=agencies)


def _login_page(request: Request, error: str = "", status: int = 200, agency: str = "", user: str = ""):
    default_agency = agency or (platform_of(request).settings.agencies[0].code
                                if platform_of(request).settings.agencies else "")
    oidc = platform_of(request).settings.oidc
    return templates.TemplateResponse(request, "login.html", {
        "error": error, "agency": default_agency, "user": user, "version": __version__,
        "sso_label": oidc.label_ko if oidc.issuer else None}, status_code=status, headers=PAGE_HEADERS)


@router.post("/auth/login", include_in_schema=False)
async def login(request: Request, agency: str = Form(""), user: str = Form(""), password: str = Form("")):
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):  # login CSRF from another site
        return _login_page(request, "다른 사이트에서 보낸 로그인 요청은 받지 않습니다. (Cross-site sign-in refused.)",
                           403, agency, user)
    new = await run_in_threadpool(sessions.sign_in, platform_of(request).db, agency, user, password)
    if isinstance(new, sessions.SignInRefused):
        status = 423 if new.locked else 503 if new.message_ko == sessions.BUSY else 401
        return _login_page(request, new.message_ko, status, agency, user)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(sessions.COOKIE, new.token, max_age=sessions.SESSION_HOURS * 3600, httponly=True,
                        samesite="strict", secure=platform_of(request).settings.cookie_secure, path="/")
    return response


def _public_base(request: Request) -> str:
    return platform_of(request).settings.oidc.public_url or str(request.base_url).rstrip("/")


@router.get("/auth/oidc/login", include_in_schema=False)
async def sso_login(request: Request):
    """Off to the agency's identity provider (authorization code with PKCE)."""
    oidc = platform_of(request).settings.oidc
    if not oidc.issuer:
        raise NotFound("기관 통합 로그인(SSO)이 설정되어 있지 않습니다.", "single sign-on is not configured")
    cookie, cookie_path = _binding_cookie(request)
    binding = sign_on.new_binding(request.cookies.get(cookie))
    try:
        url = await sign_on.begin(platform_of(request).db, oidc, _public_base(request) + SSO_CALLBACK, binding)
    except sign_on.SignOnRefused as exc:
        return _login_page(request, exc.message, 502)
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's answer arrives as a top-level navigation from its site.
    response.set_cookie(cookie, binding, max_age=int(sign_on.ATTEMPT_TTL.total_seconds()),
                        httponly=True, samesite="lax", secure=platform_of(request).settings.cookie_secure,
                        path=cookie_path)
    return response


@router.get(SSO_CALLBACK, include_in_schema=False)
async def sso_callback(request: Request):
    """Back from the provider: a session, or the sign-in page saying why not."""
    oidc = platform_of(request).settings.oidc
    if not oidc.issuer:
        raise NotFound("기관 통합 로그인(SSO)이 설정되어 있지 않습니다.", "single sign-on is not configured")
    try:
        done = await sign_on.finish(platform_of(request).db, oidc, _public_base(request) + SSO_CALLBACK,
                                    dict(request.query_params), request.cookies.get(_binding_cookie(request)[0]))
    except sign_on.SignOnRefused as exc:
        return _login_page(request, exc.message, 403)
    # The session cookie is SameSite=Strict, and this answer ends a navigation that began at the
    # provider: a redirect would carry the cross-site origin on, and the cookie would stay home.
    # A page of our own that moves on starts a same-site navigation.
    response = HTMLResponse('<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/">'
                            '<title>한창</title><p>로그인했습니다. <a href="/">한창으로 가기</a></p>',
                            headers=PAGE_HEADERS)
    response.set_cookie(sessions.COOKIE, done.session.token, max_age=sessions.SESSION_HOURS * 3600, httponly=True,
                        samesite="strict", secure=platform_of(request).settings.cookie_secure, path="/")
    response.delete_cookie(_binding_cookie(request)[0], path=_binding_cookie(request)[1])
    return response


@router.post("/auth/logout", include_in_schema=False)
async def logout(request: Request, principal: Principal = Depends(require_principal)):
    token = request.cookies.get(sessions.COOKIE, "")

    def work():
        with platform_of(request).db.session() as session:
            return sessions.sign_out(session, token)
    id_token = await run_in_threadpool(work)
    oidc = platform_of(request).settings.oidc
    # Signed in by SSO: the window goes on to the provider's logout, which comes back here.
    provider = await sign_on.logout_url(oidc, id_token, _public_base(request) + "/") \
        if id_token and oidc.issuer else None
    response = JSONResponse({"ok": True, **({"logout_url": provider} if provider else {})})
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# -- conversations ----------------------------------------------------------------------
class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


class Ask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(default="", max_length=100_000)
    model: str | None = None
    data_grade: GradeIn = Grade.OPEN
    collections: list[int] = Field(default_factory=list, max_length=20)
    regenerate: bool = False



class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=-1, le=1)
    reason: str = Field(default="", max_length=1000)


def _db(request: Request):
    return platform_of(request).db


@router.get("/api/conversations")
async def list_conversations(request: Request, q: str = "", principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            return conversations.listing(session, principal.user_id, q)
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/api/conversations", status_code=201)
async def new_conversation(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            c = conversations.create(session, principal.user_id)
            return {"id": c.id, "title": c.title}
    return JSONResponse(await run_in_threadpool(work), status_code=201)


@router.patch("/api/conversations/{conversation_id}")
async def rename_conversation(conversation_id: DbId, body: ConversationPatch, request: Request,
                              principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            c = conversations.owned(session, principal.user_id, conversation_id)
            title = body.title.strip()
            conversations.rename(session, c, title)
            return {"id": c.id, "title": title}
    return JSONResponse(await run_in_threadpool(work))


@router.delete("/api/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: DbId, request: Request,
                              principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            session.delete(conversations.owned(session, principal.user_id, conversation_id))
    await run_in_threadpool(work)
    return Response(status_code=204)


@router.get("/api/conversations/{conversation_id}/messages")
async def conversation_messages(conversation_id: DbId, request: Request,
                                principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            c = conversations.owned(session, principal.user_id, conversation_id)
            return conversations.messages(session, c, principal.user_id)
    return JSONResponse({"data": await run_in_threadpool(work)})


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@router.post("/api/conversations/{conversation_id}/messages")
async def ask(conversation_id: DbId, body: Ask, request: Request, principal: Principal = Depends(require_principal)):
    """Store the question, stream the answer (SSE), store the answer; a failure keeps the question."""
    turn = await conversation_turns.ask(platform_of(request), principal, conversation_id, conversation_turns.Question(
        body.content, body.model, body.data_grade, list(body.collections), body.regenerate))
    return StreamingResponse(_turn_stream(turn), media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def _turn_stream(turn: conversation_turns.Turn) -> AsyncIterator[bytes]:
    async with aclosing(turn.events()) as events:
        async for event in events:
            if isinstance(event, conversation_turns.Wrote):
                yield _event("delta", {"text": event.text})
            elif isinstance(event, conversation_turns.Began):
                yield _event("meta", {"model": event.model, "data_grade": event.data_grade,
                                      "route_notice": event.route_notice})
            elif isinstance(event, conversation_turns.Done):
                done = {"message_id": event.message_id, "meta": event.meta, "model": event.model}
                yield _event("done", done if event.data_grade is None else {**done, "data_grade": event.data_grade})
            else:
                yield _event("failed", {"message": event.message, "message_id": event.message_id})


@router.post("/api/messages/{message_id}/feedback")
async def feedback(message_id: DbId, body: Rating, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            conversations.rate(session, principal.user_id, principal.agency_code, message_id, body.rating,
                               body.reason)
    await run_in_threadpool(work)
    return JSONResponse({"ok": True})


@router.get("/api/chunks/{chunk_id}")
async def open_citation(chunk_id: DbId, request: Request, principal: Principal = Depends(require_principal)):
    """The whole source passage behind a citation, if the caller may read its collection."""
    def work():
        with _db(request).session() as session:
            return open_passage(session, principal, chunk_id)
    return JSONResponse(await run_in_threadpool(work))


# -- users (admin page) -----------------------------------------------------------------
class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=200)
    role: str = "user"


@router.get("/api/users")
async def list_users(request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            return users.listing(session, principal)
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/api/users", status_code=201)
async def create_user(body: NewUser, request: Request, principal: Principal = Depends(require_principal)):
    def work():
        with _db(request).session() as session:
            return users.create(session, principal, body.user, body.role, body.password)
    return JSONResponse(await run_in_threadpool(work), status_code=201)
