"""Rate limits of the web app.

- Guesses per player and failed log-ins per account are counted in the database
  (:mod:`netreveal.store.throttles`), so they hold across server processes and restarts.
- Sign-ups and failed log-ins per client address are counted in memory (one server process, a
  sliding window). The address is the connection's peer unless ``netreveal serve`` was told which
  proxies to trust (``--forwarded-allow-ips``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from fastapi import HTTPException
from sqlalchemy.orm import Session

from netreveal.store import throttles
from netreveal.store.throttles import LoginBackoff


@dataclass(frozen=True)
class RateLimit:
    """How many events a key may have within ``window`` seconds, per kind of event, and how failed
    log-ins of one account are throttled."""

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

    def __init__(self, limit: RateLimit | None, clock=time.monotonic):
        self.limit = limit
        self._clock = clock
        self._events: dict[tuple[str, object], deque[float]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    # ---- in memory: per client address ----------------------------------------------------------

    def hit(self, kind: str, key: object, record: bool = True) -> None:
        """Count one event of ``kind`` (``signups``, ``failed_logins``) for ``key`` in this process;
        HTTPException 429 (with Retry-After) when the key is over its limit."""
        if self.limit is None:
            return
        allowed = getattr(self.limit, kind)
        now = self._clock()
        window = self.limit.window
        with self._lock:
            self._calls += 1
            if self._calls % 1000 == 0:
                self._prune(now - window)
            events = self._events.setdefault((kind, key), deque())
            while events and events[0] <= now - window:
                events.popleft()
            if len(events) >= allowed:
                raise too_many(events[0] + window - now)
            if record:
                events.append(now)

    def check(self, kind: str, key: object) -> None:
        """429 when the key is over its limit, without counting an event."""
        self.hit(kind, key, record=False)

    def _prune(self, horizon: float) -> None:
        for key in [k for k, q in self._events.items() if not q or q[-1] <= horizon]:
            del self._events[key]

    # ---- in the database: per player and per account ------------------------------------------

    def check_guess(self, session: Session, player_id: int) -> None:
        """429 when the player stored ``guesses`` guesses within the window (all processes count)."""
        if self.limit is None:
            return
        now = datetime.now(timezone.utc)
        count, oldest = throttles.recent_guesses(session, player_id, now - timedelta(seconds=self.limit.window))
        if count >= self.limit.guesses:
            wait = (oldest - now).total_seconds() + self.limit.window if oldest is not None else self.limit.window
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
