"""Rate limits of the web app, all counted in the database (:mod:`netreveal.store.throttles`), so
they hold across server processes and restarts: guesses per player, failed log-ins per account,
and sign-ups and failed log-ins per client address. The address is the connection's peer unless
``netreveal serve`` was told which proxies to trust (``--forwarded-allow-ips``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from fastapi import HTTPException
from sqlalchemy.orm import Session

from netreveal.store import throttles
from netreveal.store.throttles import LoginBackoff


@dataclass(frozen=True)
class RateLimit:
    """How many events of each kind are allowed per ``window`` seconds, and how failed log-ins of
    one account are throttled. Guesses count over the last ``window`` seconds; sign-ups and failed
    log-ins of a client address over a window that begins with the address's first event."""

    guesses: int = 60  # stored guesses per player (a fast player guesses about once a second)
    signups: int = 20  # new accounts per client address
    failed_logins: int = 10  # wrong passwords per client address
    window: float = 60.0
    login_backoff: LoginBackoff = field(default_factory=LoginBackoff)


def too_many(retry_after: float, what: str = "too many requests") -> HTTPException:
    """A 429 telling the client how many seconds to wait (Retry-After, at least 1)."""
    retry = max(1, math.ceil(retry_after))
    return HTTPException(status_code=429, detail=f"{what}: wait {retry} s", headers={"Retry-After": str(retry)})


class Limiter:
    """The app's rate limits; ``limit=None`` disables every limit."""

    def __init__(self, limit: RateLimit | None):
        self.limit = limit
        self._forget_at = 0.0  # time.monotonic() when this process next removes ended windows

    # ---- per client address ----------------------------------------------------------------------

    def check_address(self, session: Session, kind: str, address: str) -> None:
        """429 (with Retry-After) when ``address`` used up its ``kind`` (``signups``,
        ``failed_logins``) for now; counts nothing. Call it before slow work such as hashing."""
        if self.limit is None:
            return
        count, started = throttles.address_events(session, kind, address, self.limit.window)
        if count >= getattr(self.limit, kind):
            wait = self.limit.window
            if started is not None:
                wait += (started - datetime.now(timezone.utc)).total_seconds()
            raise too_many(wait)

    def count_address(self, session: Session, kind: str, address: str) -> None:
        """Count one event of ``kind`` for ``address`` in the session's transaction (committed with
        it); 429 (with Retry-After, nothing counted) when its window is full."""
        if self.limit is None:
            return
        if time.monotonic() >= self._forget_at:
            self._forget_at = time.monotonic() + self.limit.window
            throttles.forget_ended_windows(session, self.limit.window)
        wait = throttles.count_address_event(session, kind, address, getattr(self.limit, kind), self.limit.window)
        if wait is not None:
            raise too_many(wait)

    # ---- in the database: per player and per account ------------------------------------------

    def guesses_since(self) -> datetime | None:
        """When the window of a player's guesses that count began (None: no limit)."""
        if self.limit is None:
            return None
        return datetime.now(timezone.utc) - timedelta(seconds=self.limit.window)

    def check_guesses(self, count: int, oldest: datetime | None) -> None:
        """429 when the player stored ``count`` guesses since :meth:`guesses_since`, the oldest at
        ``oldest``, and that is the limit (every process's guesses count: they are stored)."""
        if self.limit is None or count < self.limit.guesses:
            return
        wait = self.limit.window
        if oldest is not None:
            wait += (oldest - datetime.now(timezone.utc)).total_seconds()
        raise too_many(wait, "too many guesses")

    def claim_login(self, session: Session, account_id: int) -> None:
        """Count a log-in attempt on the account before its password is checked (commit it right
        away); LoginThrottled (429) while the account must wait."""
        if self.limit is not None:
            throttles.claim_login_attempt(session, account_id, self.limit.login_backoff)

    def forgive_login(self, session: Session, account_id: int) -> None:
        """The password was right: forget the account's failed log-ins."""
        if self.limit is not None:
            throttles.forgive_login_attempts(session, account_id)
