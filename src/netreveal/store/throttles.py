"""Rate limits kept in the database, so they hold across server processes and restarts.

Log-ins per account: the first ``LoginBackoff.free`` failed log-ins in a row cost nothing; from
then on the account waits a back-off after each failure, doubling from ``first`` seconds up to
``longest``. While it waits, every attempt is refused, the right password too, and is not counted,
so the wait never grows past ``longest``: someone who knows only a username can delay its owner,
never lock them out for good. An attempt is counted *before* its password is checked (one atomic
statement, committed by the caller) and forgiven when the password is right, so parallel attempts
cannot slip through together. Failures are forgotten ``forget_after`` seconds after the last one.

Guesses per player: counted from the stored guesses themselves (index on player and time), so no
extra row is written per guess; the count rides along in the query that reads the round
(:func:`recent_guess_columns`).

Sign-ups and failed log-ins per client address: one row per kind and address holds the events of
the address's current window and when that window began (with its first event); once ``window``
seconds have passed the count starts again. An event is counted by one atomic statement that also
refuses it when the window is full, so parallel requests (in any process) cannot slip through
together. Rows of ended windows are removed from time to time (:func:`forget_ended_windows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, case, delete, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from netreveal.store.accounts import AccountError
from netreveal.store.models import AddressLimit, Guess, LoginThrottle


@dataclass(frozen=True)
class LoginBackoff:
    """How failed log-ins of one account are throttled (seconds)."""

    free: int = 5  # failures in a row before the first back-off
    first: float = 30.0  # back-off after the ``free``-th failure; doubles with each further one
    longest: float = 900.0  # the back-off never exceeds this
    forget_after: float = 86400.0  # failures this old (counted from the last one) are forgotten

    def delay(self, failures: int) -> float:
        """Seconds an account waits after ``failures`` failed log-ins in a row."""
        if failures < self.free or self.first <= 0:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(failures - self.free, 60))


class LoginThrottled(AccountError):
    """429: the account must wait ``retry_after`` seconds before the next log-in attempt."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many wrong passwords for this account: try again in {_wait(retry_after)}",
                         status=429)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def _wait(seconds: int) -> str:
    return f"{seconds} s" if seconds < 90 else f"{math.ceil(seconds / 60)} min"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _insert(session: Session):
    """The backend's INSERT construct (with ON CONFLICT)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _blocked_until(failures, backoff: LoginBackoff, now: datetime):
    """SQL: when the back-off after ``failures`` (an SQL expression) ends; NULL while none is due."""
    if backoff.first <= 0 or backoff.longest <= 0:
        return None  # no back-off at all
    doublings = max(0, math.ceil(math.log2(backoff.longest / backoff.first)))
    whens = [(failures < backoff.free, None)]
    whens += [(failures == n, now + timedelta(seconds=backoff.delay(n)))
              for n in range(backoff.free, backoff.free + doublings)]
    return case(*whens, else_=now + timedelta(seconds=backoff.longest))


def claim_login_attempt(session: Session, account_id: int, backoff: LoginBackoff = LoginBackoff(),
                        now: datetime | None = None) -> int:
    """Count one log-in attempt on the account before its password is checked: the attempts in a
    row so far, this one included. LoginThrottled (nothing counted) while the account must wait.

    Commit right away so other processes see the attempt; :func:`forgive_login_attempts` when the
    password turns out right."""
    now = now or datetime.now(timezone.utc)
    table = LoginThrottle.__table__
    forgotten = table.c.last_failure_at <= now - timedelta(seconds=backoff.forget_after)
    failures = case((forgotten, 1), else_=table.c.failures + 1)
    first = backoff.delay(1)
    statement = (
        _insert(session)(table)
        .values(account_id=account_id, failures=1, last_failure_at=now,
                blocked_until=now + timedelta(seconds=first) if first else None)
        .on_conflict_do_update(
            index_elements=[table.c.account_id],
            set_={"failures": failures, "last_failure_at": now,
                  "blocked_until": _blocked_until(failures, backoff, now)},
            where=or_(table.c.blocked_until.is_(None), table.c.blocked_until <= now),
        )
        .returning(table.c.failures)
    )
    counted = session.execute(statement).scalar()
    if counted is not None:
        return int(counted)
    until = session.scalar(select(table.c.blocked_until).where(table.c.account_id == account_id))
    wait = (_utc(until) - now).total_seconds() if until is not None else 1.0
    raise LoginThrottled(max(1, math.ceil(wait)))


def forgive_login_attempts(session: Session, account_id: int) -> None:
    """The right password was given: forget the account's failed attempts."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.account_id == account_id))


def recent_guess_columns() -> tuple:
    """Columns to add to a query that binds ``player_id`` and ``recent_since``: how many guesses the
    player stored after ``recent_since`` (``recent_guesses``) and when the oldest of them was
    (``oldest_recent``), each a subquery answered from the index of guesses by player and time."""
    recent = aliased(Guess, name="recent")
    mine = (recent.player_id == bindparam("player_id"), recent.created_at > bindparam("recent_since"))
    return (select(func.count()).select_from(recent).where(*mine).scalar_subquery().label("recent_guesses"),
            select(func.min(recent.created_at)).where(*mine).scalar_subquery().label("oldest_recent"))


def as_utc(value: datetime | None) -> datetime | None:
    """A time read from the database, timezone-aware (SQLite returns naive UTC times)."""
    return None if value is None else _utc(value)


def count_address_event(session: Session, kind: str, address: str, allowed: int, window: float,
                        now: datetime | None = None) -> float | None:
    """Count one event of ``kind`` from ``address`` when its window has room for it: None. When the
    address already had ``allowed`` events in its current window, nothing is counted and the
    seconds until that window ends are returned. The row stays locked until the caller commits."""
    now = now or datetime.now(timezone.utc)
    if allowed <= 0:
        return window
    table = AddressLimit.__table__
    ended = table.c.window_start <= now - timedelta(seconds=window)
    statement = (
        _insert(session)(table)
        .values(kind=kind, address=address, events=1, window_start=now)
        .on_conflict_do_update(
            index_elements=[table.c.kind, table.c.address],
            set_={"events": case((ended, 1), else_=table.c.events + 1),
                  "window_start": case((ended, now), else_=table.c.window_start)},
            where=or_(ended, table.c.events < allowed),
        )
        .returning(table.c.events)
    )
    if session.execute(statement).scalar() is not None:
        return None
    _, started = address_events(session, kind, address, window, now)
    if started is None:
        return window
    return min(window, max(0.0, (started - now).total_seconds() + window))  # a parallel event may start later


def address_events(session: Session, kind: str, address: str, window: float,
                   now: datetime | None = None) -> tuple[int, datetime | None]:
    """Events of ``kind`` from ``address`` in its current window and when that window began
    ((0, None) when it has none, or its window ended)."""
    now = now or datetime.now(timezone.utc)
    row = session.execute(
        select(AddressLimit.events, AddressLimit.window_start)
        .where(AddressLimit.kind == kind, AddressLimit.address == address,
               AddressLimit.window_start > now - timedelta(seconds=window))
    ).one_or_none()
    return (0, None) if row is None else (int(row.events), _utc(row.window_start))


def forget_ended_windows(session: Session, window: float, now: datetime | None = None) -> None:
    """Remove the rows of addresses whose window ended. Rows another transaction holds locked are
    left for a later call (PostgreSQL), so this never waits for, nor deadlocks with, a request."""
    now = now or datetime.now(timezone.utc)
    table = AddressLimit.__table__
    ended = (select(table.c.kind, table.c.address)
             .where(table.c.window_start <= now - timedelta(seconds=window))
             .with_for_update(skip_locked=True))
    session.execute(delete(table).where(tuple_(table.c.kind, table.c.address).in_(ended)))
