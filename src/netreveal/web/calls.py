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
class Call:
    """One request's checks (who may make it, with which CSRF token, on which kind of study),
    run with its work by :meth:`run`."""

    request: Request
    roles: tuple[str, ...]
    csrf: bool
    sent: str | None
    kind: str | None
    players_only: str | None

    async def run(self, work: Callable[[Session, Study, Account], T]) -> T:
        """In one worker-thread hop: open a session, check the request (401/403/404/503), run
        ``work(session, study, account)``, then commit (roll back on error) and close: the commit
        happens before the response is sent."""
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session, Study, Account], T]) -> T:
        session = Session(get_store(self.request).engine, expire_on_commit=False)
        ok = False
        try:
            account, served = self._check(session)
            result = work(session, served, account)
            ok = True
        finally:
            finish_session(session, ok)
        return result

    def _check(self, session: Session) -> tuple[Account, Study]:
        account, served = current_account_and_study(self.request, session)  # one query for both
        if self.csrf:
            verify_csrf(self.request, self.sent)
        if self.players_only is None:
            account = check_role(account, self.roles)
        else:
            account = check_player(account, self.players_only)
        served = served_study(self.request, served)
        if self.kind is not None and served.kind != self.kind:
            raise HTTPException(status_code=404, detail=f"this study has no {self.kind} game")
        return account, served


def call_dependency(*roles: str, csrf: bool, kind: str | None = None,
                    players_only: str | None = None) -> Callable[[Request], Awaitable[Call]]:
    """A dependency giving a :class:`Call` of an account with one of ``roles`` (any when none) on the
    served study (of ``kind`` when given, else 404); ``csrf``: the request must carry the session's
    CSRF token (403), as every state-changing request must; ``players_only``: refuse every account
    that is not a player with 403 and this message."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request) -> Call:
        sent = await sent_csrf_token(request) if csrf else None  # a form body is read here, without a thread
        return Call(request, roles, csrf, sent, kind, players_only)

    return dependency
