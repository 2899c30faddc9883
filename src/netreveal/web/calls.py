"""Busy JSON calls in one hop to a worker thread instead of one per dependency.

Every sync dependency and sync route of FastAPI runs in a worker thread of its own; under load each
hop waits for a thread and for the interpreter lock. A route that takes a :func:`call_dependency`
does all its database work in one hop with :meth:`Call.run`: it looks the logged-in account and the
served study up together (one query: session cookie, then the CSRF token, role and study checks, the
same checks in the same order as ``check_csrf``, ``require_role`` and ``study``), then does its work
and commits::

    @router.post("/api/things")
    async def add_thing(body: ThingIn, call: Call = Depends(call_dependency("annotator", csrf=True))):
        return await call.run(lambda session, study, account: ...)

The checks run when the work does, so a request that is refused for its body (422) is refused
before its session is looked at; everything else (401, 403, 404) comes before any work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from netreveal.store.models import ROLES, Account, Study
from netreveal.web.deps import (
    check_player,
    check_role,
    current_account_and_study,
    finish_session,
    get_store,
    sent_csrf_token,
    served_study,
    verify_csrf,
)

T = TypeVar("T")


@dataclass(frozen=True)
class CallChecks:
    """What a route's calls must pass (see :func:`call_dependency`); made once per route."""

    roles: tuple[str, ...]
    csrf: bool
    kind: str | None
    players_only: str | None

    def check(self, request: Request, session: Session, sent: str | None) -> tuple[Account, Study]:
        """The logged-in account and served study of ``request`` (one query), after the CSRF
        token ``sent``, the role and the study kind are checked: 401, 403, 404 or 503 otherwise."""
        account, served = current_account_and_study(request, session)
        if self.csrf:
            verify_csrf(request, sent)
        if self.players_only is None:
            account = check_role(account, self.roles)
        else:
            account = check_player(account, self.players_only)
        served = served_study(request, served)
        if self.kind is not None and served.kind != self.kind:
            raise HTTPException(status_code=404, detail=f"this study has no {self.kind} game")
        return account, served


@dataclass(frozen=True)
class Call:
    """One request with its route's checks, run with its work by :meth:`run`."""

    request: Request
    checks: CallChecks
    sent: str | None  # the CSRF token the request carries

    async def run(self, work: Callable[[Session, Study, Account], T]) -> T:
        """In one worker-thread hop: open a session, check the request (401/403/404/503), run
        ``work(session, study, account)``, then commit (roll back on error) and close: the commit
        happens before the response is sent."""
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session, Study, Account], T]) -> T:
        session = Session(get_store(self.request).engine, expire_on_commit=False)
        ok = False
        try:
            account, served = self.checks.check(self.request, session, self.sent)
            result = work(session, served, account)
            ok = True
        finally:
            finish_session(session, ok)
        return result


def call_dependency(*roles: str, csrf: bool, kind: str | None = None,
                    players_only: str | None = None) -> Callable[[Request], Awaitable[Call]]:
    """A dependency giving a :class:`Call` of an account with one of ``roles`` (any when none) on the
    served study (of ``kind`` when given, else 404); ``csrf``: the request must carry the session's
    CSRF token (403), as every state-changing request must; ``players_only``: refuse every account
    that is not a player with 403 and this message."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
    checks = CallChecks(roles, csrf, kind, players_only)

    async def dependency(request: Request) -> Call:
        sent = await sent_csrf_token(request) if csrf else None  # a form body is read here, without a thread
        return Call(request, checks, sent)

    return dependency
