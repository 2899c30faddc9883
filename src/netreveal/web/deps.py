"""What every route of the web app builds on: the database session, the served study, the logged-in
account, roles, CSRF checks and page rendering.

Use them as FastAPI dependencies::

    @router.post("/things", dependencies=[Depends(check_csrf)])
    def add_thing(request: Request, session: Session = Depends(db),
                  who: Account = Depends(require_role("annotator")),
                  current: Study = Depends(study)): ...

``db`` commits when the route returns without error and rolls back otherwise; the commit happens
before the response is sent, so a client that got an answer knows its change is stored.

Pages extend ``base.html`` and keep their JavaScript and CSS in ``web/static``: the app's
Content-Security-Policy allows no inline script or style.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from netreveal.formatting import breakable_name, cluster_number
from netreveal.store import accounts
from netreveal.store.db import Store
from netreveal.store.models import ROLES, Account, Study, WebSession

SESSION_COOKIE = "netreveal_session"
CSRF_COOKIE = "netreveal_csrf"  # the CSRF token of a visitor who is not logged in (sign up, log in)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True))
templates.env.globals["cluster_number"] = cluster_number  # clusters are numbered as in the reports
templates.env.filters["breakable"] = lambda text: Markup(breakable_name(text))  # escaped by breakable_name


@dataclass(frozen=True)
class AccountView:
    """What pages show of the logged-in account (safe to use after the request's session closed)."""

    id: int
    username: str
    role: str


@dataclass(frozen=True)
class StudyView:
    """What pages show of the served study."""

    id: int
    name: str
    kind: str
    classes: list
    layers: list


class LoginRequired(HTTPException):
    """401 for API calls; the app turns it into a redirect to /login for page requests."""

    def __init__(self, detail: str = "log in first"):
        super().__init__(status_code=401, detail=detail)


def get_store(request: Request) -> Store:
    """The store the app serves."""
    return request.app.state.store


def finish_session(session: Session, ok: bool) -> None:
    """The end of a request's session: commit (or roll back) and close, in one go."""
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def db(request: Request) -> AsyncIterator[Session]:
    """A database session for one request: committed on success, rolled back on error.

    The commit runs as soon as the route function returns (before the response is sent), whatever
    dependency scope the caller uses; a commit error therefore reaches the client as an error.
    Opening a session does no I/O, so only its end (commit and close together) takes a worker thread.
    """
    session = Session(get_store(request).engine, expire_on_commit=False)
    function_stack = request.scope.get("fastapi_function_astack")
    if function_stack is not None:
        async def finish(exc_type, _exc, _tb) -> bool:
            await run_in_threadpool(finish_session, session, exc_type is None)
            return False

        function_stack.push_async_exit(finish)
        yield session
        return
    ok = False
    try:
        yield session
        ok = True
    finally:
        await run_in_threadpool(finish_session, session, ok)


_SERVED_STUDY = select(Study).where(Study.id == bindparam("study_id"))  # built once: every request runs it


def study(request: Request, session: Session = Depends(db)) -> Study:
    """The study this app serves (503 when it was deleted while the app runs)."""
    return served_study(request, session.execute(_SERVED_STUDY, {"study_id": request.app.state.study_id})
                        .scalar_one_or_none())


def served_study(request: Request, found: Study | None) -> Study:
    """``found``, the served study as read from the database: 503 when it is None (deleted while
    the app runs). Sets ``request.state.study``."""
    if found is None:
        raise HTTPException(status_code=503, detail="the served study no longer exists")
    request.state.study = StudyView(found.id, found.name, found.kind, list(found.classes), list(found.layers))
    return found


def reveal_study(current: Study = Depends(study)) -> Study:
    """The served study when it has a reveal game (an evaluation study has none: 404)."""
    if current.kind != "reveal":
        raise HTTPException(status_code=404, detail="this study has no reveal game")
    return current


def naming_study(current: Study = Depends(study)) -> Study:
    """The served study when its maps can be named and explained (a reveal study): an evaluation-study
    server shows its participant pages only, so the naming studio and explanation pages are 404 there."""
    if current.kind != "reveal":
        raise HTTPException(status_code=404, detail="an evaluation study has no naming studio or explanation pages")
    return current


def session_idle(request: Request) -> timedelta:
    """How long a session may go unused before it ends (``app.state.session_idle``)."""
    return getattr(request.app.state, "session_idle", None) or accounts.SESSION_IDLE


def current_account(request: Request, session: Session = Depends(db)) -> Account | None:
    """The logged-in account (from the session cookie), or None. Sets ``request.state.csrf_token``."""
    found = accounts.session_account(session, request.cookies.get(SESSION_COOKIE), idle=session_idle(request))
    return _logged_in(request, found)


def current_account_and_study(request: Request, session: Session) -> tuple[Account | None, Study | None]:
    """:func:`current_account` and, read by the same query, the served study (None when logged out,
    or when the study no longer exists: pass it to :func:`served_study`)."""
    found = accounts.session_account_and_study(session, request.cookies.get(SESSION_COOKIE),
                                               request.app.state.study_id, idle=session_idle(request))
    if found is None:
        return _logged_in(request, None), None
    account, web_session, served = found
    return _logged_in(request, (account, web_session)), served


def _logged_in(request: Request, found: tuple[Account, WebSession] | None) -> Account | None:
    """The account of a live session (or None); sets ``request.state.account`` and ``csrf_token``."""
    if found is None:
        request.state.account = None
        request.state.csrf_token = request.cookies.get(CSRF_COOKIE)
        return None
    account, web_session = found
    request.state.account = AccountView(account.id, account.username, account.role)
    request.state.csrf_token = web_session.csrf_token
    return account


def check_role(account: Account | None, roles: tuple[str, ...]) -> Account:
    """``account`` when it is logged in with a role in ``roles`` (any role when empty; admins always
    pass). Logged out: 401 (pages redirect to /login). Other role: 403."""
    if account is None:
        raise LoginRequired()
    if roles and account.role != "admin" and account.role not in roles:
        raise HTTPException(status_code=403, detail=f"this needs the role {' or '.join(roles)}")
    return account


def require_role(*roles: str) -> Callable[..., Awaitable[Account]]:
    """A dependency returning the logged-in account when its role is in ``roles`` (see :func:`check_role`)."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

    async def dependency(account: Account | None = Depends(current_account)) -> Account:  # no I/O: no thread hop
        return check_role(account, roles)

    return dependency


def check_player(account: Account | None, refusal: str) -> Account:
    """``account`` when it is a player (the only role that plays the reveal game, scores and takes
    part in evaluation studies). Logged out: 401; an annotator or admin: 403 with ``refusal``."""
    if account is None:
        raise LoginRequired()
    if account.role != "player":
        raise HTTPException(status_code=403, detail=refusal)
    return account


def require_player(refusal: str) -> Callable[..., Awaitable[Account]]:
    """A dependency returning the logged-in account when it is a player (see :func:`check_player`)."""

    async def dependency(account: Account | None = Depends(current_account)) -> Account:
        return check_player(account, refusal)

    return dependency


def home_for(role: str, study_kind: str | None = "reveal") -> str:
    """Where an account of ``role`` starts: players play (or take part in the evaluation study),
    annotators name concepts (in an evaluation study: their account page), admins see the study's
    progress."""
    if role == "admin":
        return "/study/admin" if study_kind == "evaluation" else "/admin"
    if role == "annotator":  # an evaluation study has nothing for annotators: their account page
        return "/account" if study_kind == "evaluation" else "/studio"
    return "/study" if study_kind == "evaluation" else "/play"


async def sent_csrf_token(request: Request) -> str | None:
    """The CSRF token the request carries: header ``X-CSRF-Token``, else form field ``csrf_token``."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    return sent


def verify_csrf(request: Request, sent: str | None) -> None:
    """403 unless ``sent`` is the CSRF token of the request's session (``request.state.csrf_token``,
    set by :func:`current_account`)."""
    expected = getattr(request.state, "csrf_token", None)
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token: reload the page and try again")


async def check_csrf(request: Request, account: Account | None = Depends(current_account)) -> None:
    """403 unless the request carries the session's CSRF token (header ``X-CSRF-Token`` or form field
    ``csrf_token``). Put it on every state-changing route."""
    verify_csrf(request, await sent_csrf_token(request))


def _page_state(request: Request) -> None:
    """Fill ``request.state`` with account, csrf_token and study when the route did not ask for them."""
    if hasattr(request.state, "account") and hasattr(request.state, "study"):
        return
    with get_store(request).session() as session:
        if not hasattr(request.state, "account"):
            current_account(request, session)
        if not hasattr(request.state, "study"):
            request.state.study = None
            if session.get(Study, request.app.state.study_id) is not None:
                study(request, session)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    """The page ``name`` (a template under web/templates) with ``account``, ``csrf_token`` and ``study``.

    ``account`` (an :class:`AccountView` or None) and ``study`` (a :class:`StudyView`) are snapshots
    taken when the request was authenticated, so they stay valid whatever happened to the session.

    A visitor who is not logged in gets a CSRF cookie here, so the forms on the page can be posted.
    """
    _page_state(request)
    token = request.state.csrf_token
    new_cookie = None
    if token is None:
        token = new_cookie = secrets.token_urlsafe(32)
        request.state.csrf_token = token
    values = {"account": request.state.account, "csrf_token": token, "study": request.state.study}
    values.update(context or {})
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if new_cookie is not None:
        set_csrf_cookie(request, response, new_cookie)
    return response


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_csrf_cookie(request: Request, response, token: str) -> None:
    """Give a visitor who is not logged in the CSRF token for sign-up and log-in forms."""
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request),
                        max_age=7 * 24 * 3600, path="/")
