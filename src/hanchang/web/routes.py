"""The window's pages and the JSON/SSE endpoints only it uses (all under the session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hanchang import __version__
from hanchang.api.auth import require_principal
from hanchang.api.responses import JSONResponse
from hanchang.api.schemas import DbId, GradeIn
from hanchang.assist import answer, conversations, qa
from hanchang.audit import trail
from hanchang.core.grades import Grade, passage_grade
from hanchang.core.policy import effective_grade
from hanchang.core.principal import Principal, Role
from hanchang.gateway.errors import ClientClosed, GatewayError
from hanchang.knowledge import collections as kc
from hanchang.knowledge.collections import NotAllowed
from hanchang.knowledge.search import display_source
from hanchang.store import accounts
from hanchang.store.tables import Agency, Chunk, Collection, Document, User
from hanchang.web import sessions

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter()

_GATEWAY_ERRORS_KO = {
    "upstream_unavailable": "모델이 지금 응답하지 않습니다. 잠시 뒤 다시 시도하거나 다른 모델을 고르세요.",
    "upstream_error": "모델이 올바르지 않은 응답을 보냈습니다. 다시 시도하세요.",
    "rate_limit_exceeded": "사용 한도에 도달했습니다. 잠시 뒤 다시 시도하세요.",
    "rate_limiter_unavailable": "사용량 확인 장치에 연결할 수 없어 요청을 처리하지 않았습니다. 관리자에게 알려 주세요.",
    "local_model_missing": "내장 모델이 설치되지 않았습니다. 관리자에게 알려 주세요.",
}


def _korean(error: GatewayError) -> str:
    if error.code in ("data_grade_refused", "personal_data_blocked", "model_restarting"):
        return error.message  # already Korean (and English)
    return f"{_GATEWAY_ERRORS_KO.get(error.code, '요청을 처리하지 못했습니다.')} ({error.message})"


# -- pages ------------------------------------------------------------------------------
# Only our own scripts and styles run; charts arrive as data: images; the window is never framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request):
    token = request.cookies.get(sessions.COOKIE)
    found = None
    if token:
        def lookup():
            with request.app.state.db.session() as session:
                return sessions.principal_for(session, token)
        found = await run_in_threadpool(lookup)
    if found is None:
        return _login_page(request)
    principal, csrf = found
    return templates.TemplateResponse(request, "app.html", {
        "csrf": csrf, "user": principal.user_name, "agency": principal.agency_code,
        "role": principal.role.value, "is_admin": principal.is_admin, "version": __version__},
        headers=PAGE_HEADERS)


def _login_page(request: Request, error: str = "", status: int = 200, agency: str = "", user: str = ""):
    default_agency = agency or (request.app.state.settings.agencies[0].code
                                if request.app.state.settings.agencies else "")
    return templates.TemplateResponse(request, "login.html", {
        "error": error, "agency": default_agency, "user": user, "version": __version__}, status_code=status,
        headers=PAGE_HEADERS)


@router.post("/auth/login", include_in_schema=False)
async def login(request: Request, agency: str = Form(""), user: str = Form(""), password: str = Form("")):
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):  # login CSRF from another site
        return _login_page(request, "다른 사이트에서 보낸 로그인 요청은 받지 않습니다. (Cross-site sign-in refused.)",
                           403, agency, user)
    new = await run_in_threadpool(sessions.sign_in, request.app.state.db, agency, user, password)
    if isinstance(new, sessions.SignInRefused):
        status = 423 if new.locked else 503 if new.message_ko == sessions.BUSY else 401
        return _login_page(request, new.message_ko, status, agency, user)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(sessions.COOKIE, new.token, max_age=sessions.SESSION_HOURS * 3600, httponly=True,
                        samesite="strict", secure=request.app.state.settings.cookie_secure, path="/")
    return response


@router.post("/auth/logout", include_in_schema=False)
async def logout(request: Request, principal: Principal = Depends(require_principal)):
    token = request.cookies.get(sessions.COOKIE, "")

    def work():
        with request.app.state.db.session() as session:
            sessions.sign_out(session, token)
    await run_in_threadpool(work)
    response = JSONResponse({"ok": True})
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
    return request.app.state.db


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
            c.title = body.title.strip()
            return {"id": c.id, "title": c.title}
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
    state = request.app.state
    grade = body.data_grade

    def before():
        with state.db.session() as session:
            c = conversations.owned(session, principal.user_id, conversation_id)
            question = conversations.drop_last_answer(session, c) if body.regenerate else body.content.strip()
            if not question:
                raise kc.KnowledgeError("질문을 입력하세요.", "the question is empty")
            if not body.regenerate:
                conversations.add(session, c, "user", question, grade.value)
            return conversations.history(session, c)
    history, carried = await run_in_threadpool(before)
    model = body.model or state.gateway.registry.default_model
    request_body = {"model": model, "messages": history}

    def save(role: str, content: str, meta: dict, model_used: str | None = None, stored_grade: str = "") -> int:
        # An answer is stored with the grade of everything that went into it (effective grade).
        with state.db.session() as session:
            c = conversations.owned(session, principal.user_id, conversation_id)
            return conversations.add(session, c, role, content, stored_grade or grade.value, model_used, meta).id

    async def stream():
        text, meta, model_used = "", {}, None
        effective = grade.value
        stored = False
        try:
            prepared = await answer.prepare(state, principal, answer.AnswerRequest(
                request_body, grade, collections=list(body.collections), carried=carried))
            call = prepared.call
            effective = effective_grade(call.grade, call.items).grade.value
            if prepared.unanswerable:
                state.gateway.record_unanswered(call, "no_sources")
                meta = {"citations": [], "no_sources": True}
                message_id = await run_in_threadpool(save, "assistant", qa.NO_SOURCES, meta, model, effective)
                stored = True
                yield _event("delta", {"text": qa.NO_SOURCES})
                yield _event("done", {"message_id": message_id, "meta": meta, "model": model})
                return
            start = await state.gateway.start_stream(call)
            model_used = start.model.name
            report = call.report()
            effective = report["data_grade"]
            meta = {"citations": prepared.citations or []}  # kept with a stopped answer too
            yield _event("meta", {"model": model_used, "data_grade": report["data_grade"],
                                  "route_notice": report["route_notice"]})
            counts, error, finished = None, None, False
            try:
                async for chunk in start.chunks():
                    if chunk.get("usage"):
                        counts = chunk["usage"]
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            text += piece
                            yield _event("delta", {"text": piece})
                finished = True
            except GatewayError as exc:
                error = exc
            finally:
                if error is None and not finished:  # the user pressed stop or left the page
                    error = ClientClosed()
                with anyio.CancelScope(shield=True):  # a disconnect cancels us: still record it
                    await start.rest.aclose()
                    await state.gateway.finish_stream(call, counts, error)
            meta = {"citations": prepared.citations or [], "hanchang": call.report()}
            if error is not None:
                meta["error"] = _korean(error)
            message_id = await run_in_threadpool(save, "assistant", text, meta, model_used, effective)
            stored = True
            yield _event("done", {"message_id": message_id, "meta": meta, "model": model_used,
                                  "data_grade": effective})
        except (GatewayError, kc.KnowledgeError) as exc:
            message = _korean(exc) if isinstance(exc, GatewayError) else exc.message_ko
            notice_id = await run_in_threadpool(save, "notice", message, {"code": getattr(exc, "code", "")})
            stored = True
            yield _event("failed", {"message": message, "message_id": notice_id})
        finally:
            if not stored and text:  # the user pressed stop: keep what was written
                meta = {**meta, "stopped": True}
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(save, "assistant", text, meta, model_used, effective)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


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
            row = session.execute(
                select(Chunk, Document, Collection).join(Document, Document.id == Chunk.document_id)
                .join(Collection, Collection.id == Chunk.collection_id)
                .where(Chunk.id == chunk_id, Chunk.collection_id.in_(
                    kc.readable(principal).with_only_columns(Collection.id)))).first()
            if row is None:
                raise kc.CollectionNotFound("출처를 찾을 수 없습니다.", f"passage {chunk_id} not found")
            chunk, document, collection = row
            grade = passage_grade(collection.grade, document.grade).value
            return {"text": chunk.text, "section": chunk.section, "page": chunk.page, "title": document.title,
                    "source": display_source(document.source_key), "grade": grade,
                    "collection": collection.name}
    return JSONResponse(await run_in_threadpool(work))


# -- users (admin page) -----------------------------------------------------------------
class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=200)
    role: str = "user"


@router.get("/api/users")
async def list_users(request: Request, principal: Principal = Depends(require_principal)):
    if not principal.is_admin:
        raise NotAllowed("관리자만 사용자를 볼 수 있습니다.", "admins only")

    def work():
        with _db(request).session() as session:
            query = select(User, Agency).join(Agency).order_by(Agency.code, User.name)
            if principal.role is not Role.PLATFORM_ADMIN:
                query = query.where(User.agency_id == principal.agency_id)
            return [{"agency": a.code, "user": u.name, "role": u.role} for u, a in session.execute(query)]
    return JSONResponse({"data": await run_in_threadpool(work)})


@router.post("/api/users", status_code=201)
async def create_user(body: NewUser, request: Request, principal: Principal = Depends(require_principal)):
    if not principal.is_admin:
        raise NotAllowed("관리자만 사용자를 만들 수 있습니다.", "admins only")
    try:
        role = Role.parse(body.role)
    except ValueError as exc:
        raise NotAllowed(f"알 수 없는 역할입니다: {body.role}", str(exc)) from None
    if role is Role.PLATFORM_ADMIN and principal.role is not Role.PLATFORM_ADMIN:
        raise NotAllowed("플랫폼 관리자는 플랫폼 관리자만 만들 수 있습니다.", "cannot grant platform_admin")

    def work():
        with _db(request).session() as session:
            try:
                created = accounts.create_user(session, principal.agency_code, body.user, role, body.password)
            except accounts.AccountError as exc:
                raise kc.AlreadyExists(f"사용자를 만들 수 없습니다: {exc}", str(exc)) from None
            trail.record_by(session, principal, "users.create", {"user": created.name, "role": created.role})
            return {"agency": principal.agency_code, "user": created.name, "role": created.role}
    return JSONResponse(await run_in_threadpool(work), status_code=201)
