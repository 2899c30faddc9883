"""Sign up, log in and log out: HTML forms and their JSON twins under /api.

Signing up makes a player (in an evaluation study, a participant). Annotator and admin accounts
come from an admin: an invitation link (``/invite/<token>``, made on /admin or by
``netreveal account invite``) or the ``netreveal account`` command.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from netreveal.store import accounts, invitations
from netreveal.store.accounts import AccountError
from netreveal.store.models import Account, Study
from netreveal.web.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    current_account,
    db,
    home_for,
    is_https,
    render,
    session_idle,
    set_csrf_cookie,
)

router = APIRouter()


class Credentials(BaseModel):
    username: str = Field(max_length=40)
    password: str = Field(max_length=256)


class SignUp(Credentials):
    role: str = Field("player", max_length=16)  # anything but "player" is refused with 403
    background: Literal["novice", "expert"] | None = None


class InvitedSignUp(Credentials):
    background: Literal["novice", "expert"] | None = None


SELF_SIGNUP_ONLY_PLAYERS = ("signing up makes a player account; annotator and admin accounts come only "
                            "from an admin's invitation link")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(target: str | None, default: str = "") -> str:
    """A local path to go to after logging in (anything else becomes ``default``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 200:
        return default
    return target


def _login(request: Request, session: Session, account: Account, response) -> str:
    """Start a browser session for ``account`` (ending the current one); set its cookie on ``response``."""
    accounts.end_session(session, request.cookies.get(SESSION_COOKIE))
    token, web_session = accounts.start_session(session, account, idle=session_idle(request))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=is_https(request),
                        max_age=accounts.SESSION_DAYS * 24 * 3600, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return web_session.csrf_token


def _account_json(account: Account | None) -> dict | None:
    return None if account is None else {"username": account.username, "role": account.role}


def home(request: Request, session: Session, account: Account) -> str:
    """The start page of ``account`` in the served study."""
    served = session.get(Study, request.app.state.study_id)
    return home_for(account.role, served.kind if served is not None else None)


def _counted_signup(request: Request, session: Session, create: Callable[[], Account]) -> Account:
    """The account ``create`` makes, within the client address's sign-up limit (429 when used up).
    The sign-up is counted in the transaction that stores the account: a sign-up that fails is not."""
    limiter = request.app.state.limiter
    address = _client(request)
    limiter.check_address(session, "signups", address)  # before the slow password hash
    account = create()
    limiter.count_address(session, "signups", address)
    return account


def _signup(request: Request, session: Session, form: SignUp) -> Account:
    if form.role != "player":
        raise AccountError(SELF_SIGNUP_ONLY_PLAYERS, status=403)
    return _counted_signup(request, session, lambda: accounts.create_account(
        session, form.username, form.password, "player", form.background))


def _accept(request: Request, session: Session, token: str, form: InvitedSignUp) -> Account:
    return _counted_signup(request, session, lambda: invitations.accept_invitation(
        session, token, form.username, form.password, form.background))


def count_failed_login(request: Request, session: Session) -> None:
    """A wrong password from the client address: counted and committed at once (the request's own
    answer rolls back); 429 when the address's failed log-ins are used up."""
    request.app.state.limiter.count_address(session, "failed_logins", _client(request))
    session.commit()


def _authenticate(request: Request, session: Session, form: Credentials) -> Account:
    """The account when the password is right. 429 while the client address or the account is
    throttled (the account's attempt is counted and committed before the password is checked)."""
    limiter = request.app.state.limiter
    limiter.check_address(session, "failed_logins", _client(request))
    known = accounts.find_account(session, form.username)
    if known is not None:
        limiter.claim_login(session, known.id)
        session.commit()  # other requests and processes see the attempt before the slow hash check
    account = accounts.authenticate(session, form.username, form.password)
    if account is None:
        count_failed_login(request, session)
        raise AccountError("wrong username or password", status=401)
    limiter.forgive_login(session, account.id)
    return account


# ---- pages -------------------------------------------------------------------------------------

@router.get("/login")
def login_page(request: Request, next: str | None = None,
               account: Account | None = Depends(current_account)) -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "error": None, "username": ""})


@router.post("/login", dependencies=[Depends(check_csrf)])
def login_form(request: Request, username: str = Form(max_length=40), password: str = Form(max_length=256),
               next: str = Form("", max_length=200), session: Session = Depends(db)) -> Response:
    try:
        account = _authenticate(request, session, Credentials(username=username, password=password))
    except AccountError as exc:
        page = render(request, "login.html", {"next": safe_next(next), "error": str(exc), "username": username},
                             status_code=exc.status)
        page.headers.update(getattr(exc, "headers", None) or {})  # Retry-After of a throttled account
        return page
    response = RedirectResponse(safe_next(next, home(request, session, account)), status_code=303)
    _login(request, session, account, response)
    return response


@router.get("/signup")
def signup_page(request: Request, account: Account | None = Depends(current_account)) -> HTMLResponse:
    return render(request, "signup.html", {"error": None, "username": ""})


@router.post("/signup", dependencies=[Depends(check_csrf)])
def signup_form(request: Request, username: str = Form(max_length=40), password: str = Form(max_length=256),
                role: str = Form("player", max_length=16), background: str = Form("", max_length=16),
                session: Session = Depends(db)) -> Response:
    try:
        if background not in ("", "novice", "expert"):
            raise AccountError("background must be novice or expert")
        form = SignUp.model_construct(username=username, password=password, role=role,
                                      background=background or None)
        account = _signup(request, session, form)
    except AccountError as exc:
        session.rollback()
        return render(request, "signup.html", {"error": str(exc), "username": username},
                      status_code=exc.status)
    response = RedirectResponse(home(request, session, account), status_code=303)
    _login(request, session, account, response)
    return response


def _invitation_or_404(session: Session, token: str):
    invitation = invitations.find_invitation(session, token)
    if invitation is None:
        raise AccountError(invitations.INVALID, status=404)
    return invitation


@router.get("/invite/{token}")
def invite_page(request: Request, token: str, session: Session = Depends(db),
                account: Account | None = Depends(current_account)) -> HTMLResponse:
    invitation = _invitation_or_404(session, token)
    return render(request, "invite.html", {"error": None, "username": "", "role": invitation.role,
                                           "token": token, "expires_at": invitation.expires_at})


@router.post("/invite/{token}", dependencies=[Depends(check_csrf)])
def invite_form(request: Request, token: str, username: str = Form(max_length=40),
                password: str = Form(max_length=256), background: str = Form("", max_length=16),
                session: Session = Depends(db)) -> Response:
    invitation = _invitation_or_404(session, token)
    role, expires_at = invitation.role, invitation.expires_at
    try:
        if background not in ("", "novice", "expert"):
            raise AccountError("background must be novice or expert")
        form = InvitedSignUp.model_construct(username=username, password=password, background=background or None)
        account = _accept(request, session, token, form)
    except AccountError as exc:
        session.rollback()
        return render(request, "invite.html", {"error": str(exc), "username": username, "role": role,
                                               "token": token, "expires_at": expires_at}, status_code=exc.status)
    response = RedirectResponse(home(request, session, account), status_code=303)
    _login(request, session, account, response)
    return response


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout_form(request: Request, session: Session = Depends(db)) -> RedirectResponse:
    accounts.end_session(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- JSON --------------------------------------------------------------------------------------

@router.get("/api/session")
def api_session(request: Request, account: Account | None = Depends(current_account)) -> JSONResponse:
    """The logged-in account (or null) and the CSRF token to send with state-changing calls."""
    token = request.state.csrf_token
    new_cookie = token is None
    if new_cookie:
        token = secrets.token_urlsafe(32)
    response = JSONResponse({"account": _account_json(account), "csrf_token": token},
                            headers={"Cache-Control": "no-store"})
    if new_cookie:
        set_csrf_cookie(request, response, token)
    return response


@router.post("/api/signup", status_code=201, dependencies=[Depends(check_csrf)])
def api_signup(request: Request, form: SignUp, session: Session = Depends(db)) -> JSONResponse:
    account = _signup(request, session, form)
    response = JSONResponse({}, status_code=201)
    csrf = _login(request, session, account, response)
    return _with_body(response, {"account": _account_json(account), "csrf_token": csrf})


@router.post("/api/invitations/{token}", status_code=201, dependencies=[Depends(check_csrf)])
def api_accept_invitation(request: Request, token: str, form: InvitedSignUp,
                          session: Session = Depends(db)) -> JSONResponse:
    """Sign up with an admin's invitation: an account with the invitation's role, logged in."""
    account = _accept(request, session, token, form)
    response = JSONResponse({}, status_code=201)
    csrf = _login(request, session, account, response)
    return _with_body(response, {"account": _account_json(account), "csrf_token": csrf})


@router.post("/api/login", dependencies=[Depends(check_csrf)])
def api_login(request: Request, form: Credentials, session: Session = Depends(db)) -> JSONResponse:
    account = _authenticate(request, session, form)
    response = JSONResponse({})
    csrf = _login(request, session, account, response)
    return _with_body(response, {"account": _account_json(account), "csrf_token": csrf})


@router.post("/api/logout", dependencies=[Depends(check_csrf)])
def api_logout(request: Request, session: Session = Depends(db)) -> JSONResponse:
    accounts.end_session(session, request.cookies.get(SESSION_COOKIE))
    response = JSONResponse({"account": None})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _with_body(response: JSONResponse, content: dict) -> JSONResponse:
    response.body = response.render(content)
    response.headers["content-length"] = str(len(response.body))
    return response
