"""The web app: one study served to players (the reveal game), annotators (the naming studio) and
admins. ``create_app(store)`` builds it; ``netreveal serve`` runs it with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from netreveal.errors import NetrevealError
from netreveal.store.accounts import SESSION_IDLE
from netreveal.store.building import check_ready
from netreveal.store.db import Store, unavailable_reason
from netreveal.store.models import Account, Study
from netreveal.web import admin, auth, game
from netreveal.web.account import router as account_router
from netreveal.web.deps import STATIC_DIR, current_account, db, render
from netreveal.web.evaluation import router as evaluation_router
from netreveal.web.explanations import router as explanations_router
from netreveal.web.media import media_visible
from netreveal.web.middleware import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY,
    BodyLimit,
    ConcurrencyLimit,
    OriginCheck,
    SecurityHeaders,
)
from netreveal.web.params import DbId
from netreveal.web.ratelimit import Limiter, RateLimit
from netreveal.web.studio import router as studio_router

log = logging.getLogger("netreveal.web")
LOCK_WAIT = 3.0  # seconds a request waits for another writer's lock before it is answered 503
UNAVAILABLE = {  # what a visitor is told, and after how many seconds to retry
    "busy": ("the database is busy: try again in a few seconds", 5),
    "read-only": ("the database is read-only at the moment: nothing can be saved; try again later", 60),
    "full": ("the database's disk is full: nothing can be saved; try again later", 60),
    "unavailable": ("the database cannot be reached at the moment: try again later", 30),
}


def database_label(store: Store) -> str:
    """The database as named in messages: the SQLite file name, or the URL without its password."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or "netreveal.db"
    return store.url


def resolve_study(store: Store, name: str | None = None) -> Study:
    """The study called ``name``, or the newest complete one. NetrevealError when there is none, or
    when the study named is still being written."""
    with store.session() as session:
        if name is not None:
            found = session.scalars(select(Study).where(Study.name == name)).first()
            if found is None:
                known = ", ".join(session.scalars(select(Study.name).order_by(Study.name)).all()) or "none"
                raise NetrevealError(f"no study named {name!r} in {database_label(store)} (studies: {known})")
            return check_ready(found)
        found = session.scalars(select(Study).where(Study.building_at.is_(None))
                                .order_by(Study.created_at.desc(), Study.id.desc()).limit(1)).first()
        if found is None:
            raise NetrevealError(
                f"no study in {database_label(store)}: run `netreveal demo` or `netreveal study create`"
            )
        return found


def request_limit(store: Store) -> int:
    """Requests served at once: half the connection pool (a page may open a second session), at least 1."""
    pool = store.engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if not callable(size):
        return 8
    capacity = size() + max(overflow, 0)
    return max(1, min(capacity // 2, 32))


def wants_page(request: Request) -> bool:
    """True for a browser asking for a page (not a JSON call)."""
    return (not request.url.path.startswith("/api/") and request.method in ("GET", "HEAD", "POST")
            and "text/html" in request.headers.get("accept", ""))


def _error(request: Request, status: int, detail, headers: dict | None = None) -> Response:
    if status == 401 and wants_page(request) and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?next=" + _quote(target), status_code=303)
    if wants_page(request):
        page = render(request, "error.html", {"status": status, "detail": str(detail)}, status_code=status)
        page.headers.update(headers or {})
        return page
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _closing(store: Store):
    """A lifespan that closes ``store`` when the app shuts down."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    return lifespan


DEFAULT_LIMITS = RateLimit()  # frozen settings; every limit is counted in the database


def create_app(store: Store, study: str | None = None, *, rate_limit: RateLimit | None = DEFAULT_LIMITS,
               session_idle: timedelta = SESSION_IDLE, max_body: int = DEFAULT_MAX_BODY,
               body_timeout: float = DEFAULT_BODY_TIMEOUT, lock_wait: float = LOCK_WAIT,
               close_store: bool = False) -> FastAPI:
    """The web app serving ``study`` (default: the newest complete one) from ``store``.

    ``rate_limit`` bounds guesses per player, failed log-ins per account, and sign-ups and failed
    log-ins per client address (None: no limits), all counted in the database, so apps of several
    processes on one database share them.
    Request bodies are read before anything else, at most ``max_body`` bytes within ``body_timeout``
    seconds (else 413 or 408). The store's connections wait at most ``lock_wait`` seconds for
    another writer's lock (then the request is answered 503 with Retry-After).
    NetrevealError when the store has no such study.
    ``session_idle``: a logged-in browser unused this long is logged out (besides the sessions'
    absolute lifetime of ``SESSION_DAYS``). ``close_store``: the app owns ``store`` and closes it
    when it shuts down.
    """
    if session_idle <= timedelta(0):
        raise NetrevealError("the session idle timeout must be positive")
    served = resolve_study(store, study)
    store.lock_wait = lock_wait
    app = FastAPI(title="netreveal", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_closing(store) if close_store else None)
    app.state.store = store
    app.state.study_id = served.id
    app.state.study_name = served.name
    app.state.limiter = Limiter(rate_limit)
    app.state.session_idle = session_idle
    app.add_middleware(ConcurrencyLimit, limit=request_limit(store))  # the last added runs first
    app.add_middleware(BodyLimit, max_bytes=max_body, timeout=body_timeout)
    app.add_middleware(OriginCheck)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth.router)
    app.include_router(account_router)
    app.include_router(game.router)
    app.include_router(admin.router)
    app.include_router(studio_router)
    app.include_router(explanations_router)
    app.include_router(evaluation_router)

    @app.get("/media/{media_id:int}.png")
    def media(media_id: DbId, request: Request, session: Session = Depends(db),
              account: Account | None = Depends(current_account)):
        found = media_visible(session, request.app.state.study_id, account, media_id)
        if found is None:
            return _error(request, 404, "no such picture")
        return Response(found.png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(NetrevealError)
    async def input_error(request: Request, exc: NetrevealError):
        return _error(request, getattr(exc, "status", 400), str(exc), getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def storage_error(request: Request, exc: Exception):
        reason = unavailable_reason(exc)
        if reason is None:
            raise exc  # a bug: logged (without SQL parameters) and answered 500
        message, retry = UNAVAILABLE[reason]
        cause = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
        log.warning("answered 503 to %s %s: database %s (%s)", request.method, request.url.path, reason,
                    cause[0] if cause else reason)
        headers = {"Retry-After": str(retry)}
        try:
            return _error(request, 503, message, headers)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError):  # the error page itself needs the database
            return PlainTextResponse(message, status_code=503, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        if wants_page(request):
            text = "; ".join(f"{'.'.join(map(str, p['loc'][1:]))}: {p['msg']}" for p in problems)
            return render(request, "error.html", {"status": 422, "detail": text}, status_code=422)
        return JSONResponse({"detail": problems}, status_code=422)

    return app
