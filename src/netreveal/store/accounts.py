"""Accounts and logged-in browser sessions: argon2 password hashes, roles, session tokens.

A browser session is a random token held in a cookie; the database keeps only its SHA-256, so a
leaked database does not log anyone in. A session ends after ``SESSION_DAYS`` whatever happens, and
earlier when unused for the idle timeout (``SESSION_IDLE`` unless the app sets another); its last
activity is written at most once per ``TOUCH_EVERY``, not on every request. Changing or resetting
a password ends the account's other sessions. Usernames are 3-30 characters of letters, digits,
``_``, ``.`` and ``-`` (starting with a letter or digit) and unique regardless of case; passwords
follow :mod:`netreveal.store.passwords`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from netreveal.errors import NetrevealError
from netreveal.store.models import ROLES, Account, Study, WebSession
from netreveal.store.passwords import PASSWORD_MAX, password_problem

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,29}")
SESSION_DAYS = 14  # absolute lifetime of a browser session
SESSION_IDLE = timedelta(hours=2)  # a session unused this long is over
TOUCH_EVERY = timedelta(minutes=1)  # last activity is written at most this often per session

# OWASP's minimum argon2id setting (19 MiB, 2 passes): cheap enough for many sign-ups at once on a
# small server; at most two hashes run at a time so memory stays bounded under a burst of logins.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_hash_slots = threading.BoundedSemaphore(2)
_DUMMY_HASH: str | None = None


class AccountError(NetrevealError):
    """A rejected account request; ``status`` is the HTTP status the web app answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``."""
    with _hash_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    with _hash_slots:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def check_username(username: str) -> str:
    """``username`` when it is 3-30 letters, digits, ``_ . -`` (first a letter or digit), else AccountError."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise AccountError("username must be 3-30 characters: letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit")
    return username


def check_password(password: str, username: str | None = None) -> str:
    """``password`` when :func:`~netreveal.store.passwords.password_problem` finds nothing wrong
    with it for the account ``username``, else AccountError saying why."""
    problem = password_problem(password, username)
    if problem is not None:
        raise AccountError(problem)
    return password


def check_role(role: str) -> str:
    """``role`` when it is one of player, annotator, admin, else AccountError."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    return role


def find_account(session: Session, username: str) -> Account | None:
    """The account named ``username`` (any case), or None."""
    if not isinstance(username, str) or len(username) > 40:
        return None
    return session.scalars(select(Account).where(func.lower(Account.username) == username.lower())).first()


def create_account(session: Session, username: str, password: str, role: str = "player",
                   background: str | None = None) -> Account:
    """Add an account (flushed, not committed). AccountError (409) when the name is taken
    (when another sign-up takes it at the same moment, the session is rolled back)."""
    check_username(username)
    check_password(password, username)
    check_role(role)
    if background is not None and background not in ("novice", "expert"):
        raise AccountError("background must be novice or expert")
    if find_account(session, username) is not None:
        raise AccountError(f"username {username!r} is taken", status=409)
    account = Account(username=username, password_hash=hash_password(password), role=role,
                      background=background)
    session.add(account)
    try:
        session.flush()
    except IntegrityError:  # a concurrent sign-up took the name; the session is rolled back
        session.rollback()
        raise AccountError(f"username {username!r} is taken", status=409) from None
    return account


def set_role(session: Session, username: str, role: str) -> Account:
    """Change the role of ``username``. AccountError (404) when there is no such account."""
    check_role(role)
    account = find_account(session, username)
    if account is None:
        raise AccountError(f"no account named {username!r}", status=404)
    account.role = role
    session.flush()
    return account


def authenticate(session: Session, username: str, password: str) -> Account | None:
    """The account when ``username`` and ``password`` match, else None (same cost either way)."""
    global _DUMMY_HASH
    account = find_account(session, username) if isinstance(password, str) else None
    if account is None or not isinstance(password, str) or len(password) > PASSWORD_MAX:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(8))
        verify_password(_DUMMY_HASH, "x" if not isinstance(password, str) else password[:PASSWORD_MAX])
        return None
    if not verify_password(account.password_hash, password):
        return None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a session token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, account: Account, days: float = SESSION_DAYS,
                  idle: timedelta = SESSION_IDLE) -> tuple[str, WebSession]:
    """A new browser session for ``account``: (cookie token, stored row). Expired and idle rows
    are pruned."""
    now = datetime.now(timezone.utc)
    idle_since = now - idle
    session.execute(delete(WebSession).where(or_(
        WebSession.expires_at < now, WebSession.last_seen_at < idle_since,
        WebSession.last_seen_at.is_(None) & (WebSession.created_at < idle_since))))
    token = secrets.token_urlsafe(32)
    row = WebSession(token_hash=token_hash(token), account_id=account.id, csrf_token=secrets.token_urlsafe(32),
                     created_at=now, expires_at=now + timedelta(days=days), last_seen_at=now)
    session.add(row)
    session.flush()
    return token, row


# built once: every request looks its session up, and building the statement costs more than running it
_SESSION_LOOKUP = (select(Account, WebSession).join(WebSession, WebSession.account_id == Account.id)
                   .where(WebSession.token_hash == bindparam("token_hash")))
# the same, with a study by id in the same round trip (NULLs when there is no such study)
_SESSION_AND_STUDY_LOOKUP = (select(Account, WebSession, Study).join(WebSession, WebSession.account_id == Account.id)
                             .outerjoin(Study, Study.id == bindparam("study_id"))
                             .where(WebSession.token_hash == bindparam("token_hash")))


def session_account(session: Session, token: str | None,
                    idle: timedelta = SESSION_IDLE) -> tuple[Account, WebSession] | None:
    """The account and session row behind a cookie token, or None (unknown, malformed, expired or
    unused for longer than ``idle``). Records the activity when the last record is older than
    ``TOUCH_EVERY`` (an UPDATE in ``session``'s transaction)."""
    if not token or len(token) > 128:
        return None
    found = session.execute(_SESSION_LOOKUP, {"token_hash": token_hash(token)}).first()
    if found is None or not _live(session, found[1], idle):
        return None
    return found[0], found[1]


def session_account_and_study(session: Session, token: str | None, study_id: int,
                              idle: timedelta = SESSION_IDLE) -> tuple[Account, WebSession, Study | None] | None:
    """:func:`session_account` and, read by the same query, the study ``study_id`` (None when it does
    not exist): (account, session row, study), or None without a live session."""
    if not token or len(token) > 128:
        return None
    found = session.execute(_SESSION_AND_STUDY_LOOKUP,
                            {"token_hash": token_hash(token), "study_id": study_id}).first()
    if found is None or not _live(session, found[1], idle):
        return None
    return found[0], found[1], found[2]


def _live(session: Session, row: WebSession, idle: timedelta) -> bool:
    """False when the session row has expired or was unused for longer than ``idle``; else True,
    recording the activity when the last record is older than ``TOUCH_EVERY``."""
    now = datetime.now(timezone.utc)
    last_seen = _utc(row.last_seen_at or row.created_at)
    if _utc(row.expires_at) <= now or now - last_seen > idle:
        return False
    if now - last_seen > TOUCH_EVERY:
        session.execute(
            update(WebSession).where(
                WebSession.token_hash == row.token_hash,
                or_(WebSession.last_seen_at.is_(None), WebSession.last_seen_at < now - TOUCH_EVERY))
            .values(last_seen_at=now).execution_options(synchronize_session=False))
        set_committed_value(row, "last_seen_at", now)
    return True


def end_session(session: Session, token: str | None) -> None:
    """Forget the browser session behind ``token`` (log out)."""
    if token and len(token) <= 128:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def end_all_sessions(session: Session, account: Account) -> int:
    """Forget every browser session of ``account`` (log out everywhere); how many there were."""
    result = session.execute(delete(WebSession).where(WebSession.account_id == account.id))
    return result.rowcount or 0


def change_password(session: Session, account: Account, current: str, new: str) -> int:
    """Set the password of the logged-in ``account`` after checking its ``current`` one (AccountError
    403 when wrong) and end all its sessions (the caller starts a new one for the browser that
    asked); the number of sessions ended."""
    if (not isinstance(current, str) or len(current) > PASSWORD_MAX
            or not verify_password(account.password_hash, current)):
        raise AccountError("the current password is wrong", status=403)
    check_password(new, account.username)
    if new == current:
        raise AccountError("the new password is the current one")
    account.password_hash = hash_password(new)
    session.flush()
    return end_all_sessions(session, account)


def reset_password(session: Session, username: str, new: str) -> tuple[Account, int]:
    """An admin's reset: set the password of ``username`` and end all its sessions; (account,
    sessions ended). AccountError (404) when there is no such account."""
    account = find_account(session, username)
    if account is None:
        raise AccountError(f"no account named {username!r}", status=404)
    check_password(new, account.username)
    account.password_hash = hash_password(new)
    session.flush()
    return account, end_all_sessions(session, account)
