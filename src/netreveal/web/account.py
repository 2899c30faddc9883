"""The logged-in person's own account: change the password, log out everywhere (page and JSON).

Changing the password ends every session of the account and starts a new one for the browser
that asked (so it stays logged in, with a new cookie and CSRF token); logging out everywhere ends
them all, this one included.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netreveal.store import accounts
from netreveal.store.accounts import AccountError
from netreveal.store.models import Account, WebSession
from netreveal.web.auth import _client, _login, _with_body, count_failed_login
from netreveal.web.deps import SESSION_COOKIE, check_csrf, db, render, require_role, session_idle

router = APIRouter()
logged_in = require_role()
_MESSAGES = {"password": "Password changed. Every other browser logged in to this account is logged out."}


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


def _change(request: Request, session: Session, account: Account, current: str, new: str) -> None:
    request.app.state.limiter.check_address(session, "failed_logins", _client(request))
    try:
        accounts.change_password(session, account, current, new)
    except AccountError as exc:
        if exc.status == 403:  # a wrong current password counts like a failed log-in
            count_failed_login(request, session)
        raise


def _page(request: Request, session: Session, account: Account, message: str | None = None,
          error: str | None = None, status_code: int = 200) -> HTMLResponse:
    sessions = session.scalar(select(func.count()).select_from(WebSession)
                              .where(WebSession.account_id == account.id)) or 0
    return render(request, "account.html", {"message_text": _MESSAGES.get(message or ""), "error": error,
                                            "sessions": sessions, "idle_minutes": _idle_minutes(request)},
                  status_code=status_code)


def _idle_minutes(request: Request) -> int:
    return int(session_idle(request).total_seconds() // 60)


@router.get("/account")
def account_page(request: Request, message: str | None = None, session: Session = Depends(db),
                 me: Account = Depends(logged_in)) -> HTMLResponse:
    return _page(request, session, me, message)


@router.post("/account/password", dependencies=[Depends(check_csrf)])
def password_form(request: Request, current_password: str = Form(max_length=256),
                  new_password: str = Form(max_length=256), new_password_again: str = Form(max_length=256),
                  session: Session = Depends(db), me: Account = Depends(logged_in)) -> Response:
    try:
        if new_password != new_password_again:
            raise AccountError("the two new passwords differ")
        _change(request, session, me, current_password, new_password)
    except AccountError as exc:
        session.rollback()
        return _page(request, session, me, error=str(exc), status_code=exc.status)
    response = RedirectResponse("/account?message=password", status_code=303)
    _login(request, session, me, response)
    return response


@router.post("/account/logout-everywhere", dependencies=[Depends(check_csrf)])
def logout_everywhere_form(session: Session = Depends(db), me: Account = Depends(logged_in)) -> RedirectResponse:
    accounts.end_all_sessions(session, me)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/api/account/password", dependencies=[Depends(check_csrf)])
def api_password(request: Request, body: PasswordChange, session: Session = Depends(db),
                 me: Account = Depends(logged_in)) -> JSONResponse:
    """Change my password: every other session ends; this browser gets a new session and CSRF token."""
    _change(request, session, me, body.current_password, body.new_password)
    response = JSONResponse({})
    csrf = _login(request, session, me, response)
    return _with_body(response, {"account": {"username": me.username, "role": me.role}, "csrf_token": csrf})


@router.post("/api/logout-everywhere", dependencies=[Depends(check_csrf)])
def api_logout_everywhere(session: Session = Depends(db), me: Account = Depends(logged_in)) -> JSONResponse:
    """End every session of my account, this one included."""
    ended = accounts.end_all_sessions(session, me)
    response = JSONResponse({"account": None, "sessions_ended": ended})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
