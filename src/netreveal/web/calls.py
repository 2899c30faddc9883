"""Busy JSON calls in two hops to a worker thread instead of one per dependency.

Every sync dependency and sync route of FastAPI runs in a worker thread of its own; under load each
hop waits for a thread and for the interpreter lock. A route that takes a :func:`call_dependency`
gets the logged-in account and the served study looked up together in one hop and one query
(session cookie, CSRF token, role, study: the same checks, in the same order, as ``check_csrf``,
``require_role`` and ``study``), then does its work and commits in a second hop with :meth:`Call.run`::

    @router.post("/api/things")
    async def add_thing(body: ThingIn, call: Call = Depends(call_dependency("annotator", csrf=True))):
        return await call.run(lambda session, study, account: ...)
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


@dataclass
class Call:
    """One request's database session, logged-in account and served study."""

    session: Session
    account: Account
    study: Study
    closed: bool = False

    async def run(self, work: Callable[[Session, Study, Account], T]) -> T:
        """``work(session, study, account)`` in a worker thread, then commit (roll back on error) and
        close, in the same hop: the commit happens before the response is sent."""
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session, Study, Account], T]) -> T:
        ok = False
        try:
            result = work(self.session, self.study, self.account)
            ok = True
        finally:
            self.closed = True
            finish_session(self.session, ok)
        return result


def _open(request: Request, roles: tuple[str, ...], csrf: bool, sent: str | None, kind: str | None,
          players_only: str | None) -> Call:
    session = Session(get_store(request).engine, expire_on_commit=False)
    try:
        account, served = current_account_and_study(request, session)  # one query for both
        if csrf:
            verify_csrf(request, sent)
        account = check_role(account, roles) if players_only is None else check_player(account, players_only)
        served = served_study(request, served)
        if kind is not None and served.kind != kind:
            raise HTTPException(status_code=404, detail=f"this study has no {kind} game")
        return Call(session, account, served)
    except BaseException:
        session.close()
        raise


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
        function_stack = request.scope.get("fastapi_function_astack")  # unwound when the route function ends
        if function_stack is None:
            raise RuntimeError("call_dependency needs FastAPI's per-route exit stack")
        sent = await sent_csrf_token(request) if csrf else None  # a form body is read here, without a thread
        call = await run_in_threadpool(_open, request, roles, csrf, sent, kind, players_only)

        async def close_unused(_exc_type, _exc, _tb) -> bool:
            if not call.closed:  # the route failed before its work ran (a bad body, say)
                call.closed = True
                await run_in_threadpool(finish_session, call.session, False)
            return False

        function_stack.push_async_exit(close_unused)
        return call

    return dependency
