"""Invitations: how annotator and admin accounts come to exist (besides ``netreveal account``).

An admin makes an invitation for a role; it is a random token, shown once as a link
(``/invite/<token>``), valid for ``days`` and usable once: the person who opens it picks a user
name and password and gets an account with that role. Only the token's SHA-256 is stored. Self
sign-up only ever makes players. Functions flush but do not commit.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from netreveal.store.accounts import (
    AccountError,
    check_password,
    check_role,
    check_username,
    create_account,
    token_hash,
)
from netreveal.store.models import Account, Invitation

INVITE_DAYS = 7
INVITE_DAYS_MAX = 30
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
INVALID = "this invitation link is not valid: it was used already, it expired, or it was withdrawn"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def create_invitation(session: Session, role: str, created_by: Account | None = None,
                      days: float = INVITE_DAYS) -> tuple[str, Invitation]:
    """A new invitation for ``role`` valid ``days`` (at most ``INVITE_DAYS_MAX``): (token, row)."""
    check_role(role)
    if not isinstance(days, (int, float)) or isinstance(days, bool) or not 0 < days <= INVITE_DAYS_MAX:
        raise AccountError(f"an invitation is valid for more than 0 and at most {INVITE_DAYS_MAX} days")
    token = secrets.token_urlsafe(24)
    now = _now()
    row = Invitation(token_hash=token_hash(token), role=role, created_by=created_by.id if created_by else None,
                     created_at=now, expires_at=now + timedelta(days=days))
    session.add(row)
    session.flush()
    return token, row


def find_invitation(session: Session, token: str | None) -> Invitation | None:
    """The open invitation behind ``token`` (unused and unexpired), or None."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        return None
    row = session.scalars(select(Invitation).where(Invitation.token_hash == token_hash(token))).first()
    if row is None or row.used_at is not None or _utc(row.expires_at) <= _now():
        return None
    return row


def accept_invitation(session: Session, token: str, username: str, password: str,
                      background: str | None = None) -> Account:
    """Use the invitation behind ``token``: a new account with its role. AccountError 404 when the
    invitation is unknown, used or expired (two people using one link at once: one of them gets
    it); the errors of :func:`~netreveal.store.accounts.create_account` otherwise. On an error the
    caller rolls the session back (the invitation stays open)."""
    check_username(username)
    check_password(password, username)
    invitation = find_invitation(session, token)
    if invitation is None:
        raise AccountError(INVALID, status=404)
    now = _now()
    claimed = session.execute(
        update(Invitation).where(Invitation.id == invitation.id, Invitation.used_at.is_(None),
                                 Invitation.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise AccountError(INVALID, status=404)
    account = create_account(session, username, password, invitation.role, background)
    session.execute(update(Invitation).where(Invitation.id == invitation.id).values(used_by=account.id)
                    .execution_options(synchronize_session=False))
    return account


def open_invitations(session: Session, limit: int = 100) -> list[Invitation]:
    """Invitations not used yet and not expired, newest first."""
    return list(session.scalars(
        select(Invitation).where(Invitation.used_at.is_(None), Invitation.expires_at > _now())
        .order_by(Invitation.id.desc()).limit(limit)))


def withdraw_invitation(session: Session, invitation_id: int) -> None:
    """Make an open invitation unusable (it stays in the table, as expired now). AccountError 404
    when there is no such open invitation."""
    now = _now()
    result = session.execute(
        update(Invitation).where(Invitation.id == invitation_id, Invitation.used_at.is_(None),
                                 Invitation.expires_at > now)
        .values(expires_at=now).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise AccountError("no such open invitation", status=404)
