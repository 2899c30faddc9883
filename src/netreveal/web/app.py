"""The web app: one study served to players (the reveal game), annotators (the naming studio) and
admins. ``create_app(store)`` builds it; ``netreveal serve`` runs it with uvicorn."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from netreveal.errors import NetrevealError
from netreveal.store.accounts import SESSION_IDLE
from netreveal.store.db import Store
from netreveal.store.models import Account, Study
from netreveal.web import admin, auth, game
from netreveal.web.account import router as account_router
from netreveal.web.deps import STATIC_DIR, current_account, db, render
from netreveal.web.evaluation import router as evaluation_router
from netreveal.web.explanations import router as explanations_router
from netreveal.web.media import media_visible
from netreveal.web.ratelimit import Limiter, RateLimit
from netreveal.web.studio import router as studio_router

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    # scripts and styles come from /static only: pages put their code in static files, never inline
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
                                  b"style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                  b"frame-ancestors 'none'")),
]


def database_label(store: Store) -> str:
    """The database as named in messages: the SQLite file name, or the URL without its password."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or "netreveal.db"
    return store.url


def resolve_study(store: Store, name: str | None = None) -> Study:
    """The study called ``name``, or the newest one. NetrevealError when there is none."""
    with store.session() as session:
        if name is not None:
            found = session.scalars(select(Study).where(Study.name == name)).first()
            if found is None:
                known = ", ".join(session.scalars(select(Study.name).order_by(Study.name)).all()) or "none"
                raise NetrevealError(f"no study named {name!r} in {database_label(store)} (studies: {known})")
            return found
        found = session.scalars(select(Study).order_by(Study.created_at.desc(), Study.id.desc()).limit(1)).first()
        if found is None:
            raise NetrevealError(f"no study in {database_label(store)}: run `netreveal demo` or `netreveal study create`")
        return found


class SecurityHeaders:
    """Adds the security headers to every HTTP response (pure ASGI: no per-request task overhead)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ConcurrencyLimit:
    """At most ``limit`` requests past this point at once (static files excepted); the rest wait here.

    Each request holds one database connection from its first query to its commit, and sync routes
    run on a bounded thread pool: without a bound, a burst of requests can take every connection
    while the requests holding them wait for a thread. Waiting here costs neither."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)


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


DEFAULT_LIMITS = RateLimit()  # frozen settings; each app counts per address in its own Limiter


def create_app(store: Store, study: str | None = None, *, rate_limit: RateLimit | None = DEFAULT_LIMITS,
               session_idle: timedelta = SESSION_IDLE) -> FastAPI:
    """The web app serving ``study`` (default: the newest) from ``store``.

    ``rate_limit`` bounds guesses per player, failed log-ins per account, and sign-ups and failed
    log-ins per client address (None: no limits); the first two are counted in the database.
    NetrevealError when the store has no such study.
    ``session_idle``: a logged-in browser unused this long is logged out (besides the sessions'
    absolute lifetime of ``SESSION_DAYS``).
    """
    if session_idle <= timedelta(0):
        raise NetrevealError("the session idle timeout must be positive")
    served = resolve_study(store, study)
    app = FastAPI(title="netreveal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.study_id = served.id
    app.state.study_name = served.name
    app.state.limiter = Limiter(rate_limit)
    app.state.session_idle = session_idle
    app.add_middleware(ConcurrencyLimit, limit=request_limit(store))
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
    def media(media_id: int, request: Request, session: Session = Depends(db),
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

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        if wants_page(request):
            text = "; ".join(f"{'.'.join(map(str, p['loc'][1:]))}: {p['msg']}" for p in problems)
            return render(request, "error.html", {"status": 422, "detail": text}, status_code=422)
        return JSONResponse({"detail": problems}, status_code=422)

    return app
