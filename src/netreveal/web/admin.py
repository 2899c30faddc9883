"""Admin pages: the study's progress, its export as a zip of CSV and JSON, and accounts: roles,
invitations (the only way, besides the ``netreveal account`` command, to make annotators and
admins) and password resets (which end the account's sessions)."""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from netreveal.store import accounts, invitations
from netreveal.store.accounts import AccountError
from netreveal.store.db import Store
from netreveal.store.models import ROLES, Account, Concept, Game, Guess, Item, Study, StudyImage
from netreveal.web.deps import check_csrf, db, get_store, render, require_role, study
from netreveal.web.params import DbId

router = APIRouter()
admin = require_role("admin")
ACCOUNTS_SHOWN = 500


class RoleIn(BaseModel):
    username: str = Field(max_length=40)
    role: str = Field(max_length=16)


class InviteIn(BaseModel):
    role: str = Field(max_length=16)
    days: float = invitations.INVITE_DAYS


class PasswordResetIn(BaseModel):
    username: str = Field(max_length=40)
    new_password: str = Field(max_length=256)


def progress(session: Session, current: Study) -> dict[str, Any]:
    """Labels per item (distribution), unlabelled items, rounds, players, annotators and concepts."""
    per_item = session.execute(
        select(Item.id, Item.layer, func.count(Guess.id))
        .outerjoin(Guess, Guess.item_id == Item.id).where(Item.study_id == current.id)
        .group_by(Item.id, Item.layer)
    ).all()
    distribution = Counter(n for _, _, n in per_item)
    layers: dict[str, list[int]] = {name: [0, 0] for name in current.layers}
    for _, layer, n in per_item:
        counts = layers.setdefault(layer, [0, 0])
        counts[0] += 1
        counts[1] += n > 0
    study_games = select(Game).join(Item, Item.id == Game.item_id).where(Item.study_id == current.id).subquery()
    rounds = dict(session.execute(
        select(study_games.c.outcome, func.count()).group_by(study_games.c.outcome)).all())
    roles = dict(session.execute(select(Account.role, func.count()).group_by(Account.role)).all())
    return {
        "study": current.name,
        "images": session.scalar(select(func.count()).where(StudyImage.study_id == current.id)) or 0,
        "items": len(per_item),
        "unlabelled_items": distribution.get(0, 0),
        "labels": sum(n for _, _, n in per_item),
        "labels_per_item": [{"labels": k, "items": distribution[k]} for k in sorted(distribution)],
        "layers": [{"layer": name, "items": c[0], "labelled": c[1]} for name, c in layers.items()],
        "rounds_finished": sum(v for k, v in rounds.items() if k is not None),
        "rounds_open": rounds.get(None, 0),
        "wins": rounds.get("win", 0), "losses": rounds.get("loss", 0), "resigns": rounds.get("resign", 0),
        "players_active": session.scalar(select(func.count(distinct(study_games.c.player_id)))) or 0,
        "accounts": {role: roles.get(role, 0) for role in ROLES},
        "annotators_active": session.scalar(
            select(func.count(distinct(Concept.annotator_id))).where(Concept.study_id == current.id)) or 0,
        "concepts": session.scalar(
            select(func.count()).where(Concept.study_id == current.id, Concept.removed.is_(False))) or 0,
    }


def export_zip(store: Store, name: str, kind: str = "reveal") -> bytes:
    """The study as a zip of CSV tables and study.json (``netreveal study export`` without the pictures)."""
    if kind == "evaluation":  # questions, participants and responses
        from netreveal.studies.evaluation import export_evaluation as export_study
    else:
        # imports torch: only when someone exports
        from netreveal.studies.export import export_study

    with tempfile.TemporaryDirectory(prefix="netreveal-export-") as tmp:
        out = Path(tmp) / "export"
        export_study(store, name, out, media=False)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{safe_name(name)}/{path.relative_to(out).as_posix()}")
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``_ . -`` replaced (for file names)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "study"


def _accounts(session: Session) -> list[dict[str, Any]]:
    return [{"username": a.username, "role": a.role, "created_at": a.created_at}
            for a in session.scalars(select(Account).order_by(Account.username).limit(ACCOUNTS_SHOWN))]


def _not_me(session: Session, me: Account, username: str, what: str) -> None:
    target = accounts.find_account(session, username)
    if target is not None and target.id == me.id:
        raise AccountError(what, status=409)


def _change_role(session: Session, me: Account, username: str, role: str) -> Account:
    _not_me(session, me, username, "you cannot change your own role (ask another admin)")
    return accounts.set_role(session, username, role)


def _reset_password(session: Session, me: Account, username: str, new_password: str) -> tuple[Account, int]:
    _not_me(session, me, username, "change your own password on your account page (/account)")
    return accounts.reset_password(session, username, new_password)


def invitation_link(request: Request, token: str) -> str:
    """The address of the invitation page for ``token`` on this server."""
    return f"{str(request.base_url).rstrip('/')}/invite/{token}"


_MESSAGES = {"role": "Role changed.", "password": "Password reset; that account's sessions were ended.",
             "withdrawn": "Invitation withdrawn."}


def _admin_page(request: Request, session: Session, current: Study, *, message: str | None = None,
                error: str | None = None, new_invitation: dict | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "admin.html", {
        "progress": progress(session, current), "accounts": _accounts(session), "roles": ROLES,
        "message_text": _MESSAGES.get(message or ""), "limit": ACCOUNTS_SHOWN, "error": error,
        "invitations": invitations.open_invitations(session), "new_invitation": new_invitation,
        "invite_days": invitations.INVITE_DAYS, "invite_days_max": invitations.INVITE_DAYS_MAX,
    }, status_code=status_code)


@router.get("/admin")
def admin_page(request: Request, message: str | None = None, session: Session = Depends(db),
               me: Account = Depends(admin), current: Study = Depends(study)) -> HTMLResponse:
    return _admin_page(request, session, current, message=message)


def _refused(request: Request, session: Session, current: Study, exc: AccountError) -> HTMLResponse:
    session.rollback()
    return _admin_page(request, session, current, error=str(exc), status_code=exc.status)


@router.post("/admin/role", dependencies=[Depends(check_csrf)])
def admin_role_form(request: Request, username: str = Form(max_length=40), role: str = Form(max_length=16),
                    session: Session = Depends(db), me: Account = Depends(admin),
                    current: Study = Depends(study)) -> Response:
    try:
        _change_role(session, me, username, role)
    except AccountError as exc:
        return _refused(request, session, current, exc)
    return RedirectResponse("/admin?message=role", status_code=303)


@router.post("/admin/password", dependencies=[Depends(check_csrf)])
def admin_password_form(request: Request, username: str = Form(max_length=40),
                        new_password: str = Form(max_length=256), session: Session = Depends(db),
                        me: Account = Depends(admin), current: Study = Depends(study)) -> Response:
    try:
        _reset_password(session, me, username, new_password)
    except AccountError as exc:
        return _refused(request, session, current, exc)
    return RedirectResponse("/admin?message=password", status_code=303)


@router.post("/admin/invite", dependencies=[Depends(check_csrf)])
def admin_invite_form(request: Request, role: str = Form(max_length=16), days: float = Form(invitations.INVITE_DAYS),
                      session: Session = Depends(db), me: Account = Depends(admin),
                      current: Study = Depends(study)) -> HTMLResponse:
    """A new invitation; its link is shown on this page once (only its hash is stored)."""
    try:
        token, row = invitations.create_invitation(session, role, me, days)
    except AccountError as exc:
        return _refused(request, session, current, exc)
    shown = {"link": invitation_link(request, token), "role": row.role, "expires_at": row.expires_at}
    return _admin_page(request, session, current, new_invitation=shown)


@router.post("/admin/invite/{invitation_id:int}/withdraw", dependencies=[Depends(check_csrf)])
def admin_withdraw_form(request: Request, invitation_id: DbId, session: Session = Depends(db),
                        me: Account = Depends(admin), current: Study = Depends(study)) -> Response:
    try:
        invitations.withdraw_invitation(session, invitation_id)
    except AccountError as exc:
        return _refused(request, session, current, exc)
    return RedirectResponse("/admin?message=withdrawn", status_code=303)


@router.get("/admin/export.zip")
def admin_export(request: Request, me: Account = Depends(admin), current: Study = Depends(study)) -> Response:
    data = export_zip(get_store(request), current.name, current.kind)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{safe_name(current.name)}.zip"', "Cache-Control": "no-store"})


@router.get("/api/admin/progress")
def api_progress(session: Session = Depends(db), me: Account = Depends(admin),
                 current: Study = Depends(study)) -> dict[str, Any]:
    return progress(session, current)


@router.post("/api/admin/role", dependencies=[Depends(check_csrf)])
def api_role(body: RoleIn, session: Session = Depends(db), me: Account = Depends(admin)) -> dict[str, str]:
    account = _change_role(session, me, body.username, body.role)
    return {"username": account.username, "role": account.role}


@router.post("/api/admin/password", dependencies=[Depends(check_csrf)])
def api_password(body: PasswordResetIn, session: Session = Depends(db), me: Account = Depends(admin)) -> dict[str, Any]:
    """Set another account's password and end its sessions."""
    account, ended = _reset_password(session, me, body.username, body.new_password)
    return {"username": account.username, "sessions_ended": ended}


@router.post("/api/admin/invitations", status_code=201, dependencies=[Depends(check_csrf)])
def api_invite(request: Request, body: InviteIn, session: Session = Depends(db),
               me: Account = Depends(admin)) -> dict[str, str]:
    """A one-time invitation link for ``role``, valid ``days`` (shown only in this answer)."""
    token, row = invitations.create_invitation(session, body.role, me, body.days)
    return {"link": invitation_link(request, token), "token": token, "role": row.role,
            "expires_at": row.expires_at.isoformat()}
