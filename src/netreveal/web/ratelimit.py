"""In-memory sliding-window rate limits (one server process): guesses per player, sign-ups and failed
log-ins per client address."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from fastapi import HTTPException


@dataclass(frozen=True)
class RateLimit:
    """How many events a key may have within ``window`` seconds, per kind of event."""

    guesses: int = 30  # guesses (and reveals) per player
    signups: int = 20  # new accounts per client address
    failed_logins: int = 10  # wrong passwords per client address
    window: float = 60.0


class Limiter:
    """Counts events per (kind, key) in a sliding window; ``limit=None`` disables every limit."""

    def __init__(self, limit: RateLimit | None, clock=time.monotonic):
        self.limit = limit
        self._clock = clock
        self._events: dict[tuple[str, object], deque[float]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def _allowed(self, kind: str) -> int | None:
        return None if self.limit is None else getattr(self.limit, kind)

    def hit(self, kind: str, key: object, record: bool = True) -> None:
        """Count one event; HTTPException 429 (with Retry-After) when the key is over its limit."""
        allowed = self._allowed(kind)
        if allowed is None:
            return
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
                retry = max(1, int(events[0] + window - now) + 1)
                raise HTTPException(status_code=429, detail=f"too many requests: wait {retry} s",
                                    headers={"Retry-After": str(retry)})
            if record:
                events.append(now)

    def check(self, kind: str, key: object) -> None:
        """429 when the key is over its limit, without counting an event."""
        self.hit(kind, key, record=False)

    def _prune(self, horizon: float) -> None:
        for key in [k for k, q in self._events.items() if not q or q[-1] <= horizon]:
            del self._events[key]
