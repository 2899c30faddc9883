"""Evaluation studies over HTTP: people rate explanations and simulate the model (prefix ``/study``).

Pages: ``/study`` (what a visitor sees depends on where they stand: an invitation to log in, the
consent and background form, the questions one at a time, or the thank-you page) and
``/study/admin`` (progress, export). JSON under ``/study/api``: the participant's state (the
current question as :func:`netreveal.userstudy.participant_view` gives it), answers, and the
pictures of a question, addressed by question id and anonymous letter (only the current
question's; the pictures of an evaluation study are never served by ``/media``). Player accounts
take part (annotators and admins get 403: they do not take part or score); every POST checks the
CSRF token. An answered question cannot be answered again: a repeat is refused with 409 and the
first answer stands. The rules live in :mod:`netreveal.store.evaluation_flow`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt
from sqlalchemy.orm import Session

from netreveal.store import evaluation_flow as flow
from netreveal.store.evaluation import progress
from netreveal.store.models import Account, EvalParticipant, Study
from netreveal.web.deps import (
    check_csrf,
    current_account,
    db,
    render,
    require_player,
    require_role,
    study,
)

router = APIRouter(prefix="/study", tags=["evaluation"])
NOT_A_PARTICIPANT = ("annotator and admin accounts do not take part in evaluation studies: only player "
                     "accounts (those made by signing up) do; admins follow the study at /study/admin")
participant_role = require_player(NOT_A_PARTICIPANT)
admin = require_role("admin")
PICTURE_HEADERS = {"Cache-Control": "private, max-age=3600"}


class EnrolIn(BaseModel):
    background: str = Field(max_length=16)
    consent: StrictBool


class AnswerIn(BaseModel):
    ratings: dict[str, dict[str, StrictInt]] | None = Field(default=None, max_length=26)
    choice: str | None = Field(default=None, max_length=flow.CHOICE_MAX)
    text: str | None = Field(default=None, max_length=2 * flow.COMMENT_MAX)


def evaluation_study(current: Study = Depends(study)) -> Study:
    """The served study when it is an evaluation study (404 otherwise)."""
    return flow.check_study(current)


def participant(session: Session = Depends(db), account: Account = Depends(participant_role),
                current: Study = Depends(evaluation_study)) -> EvalParticipant:
    """The logged-in account's participation (404 until it enrols)."""
    found = flow.find_participant(session, current, account)
    if found is None:
        raise flow.EvalError("you have not enrolled in this study yet: give your consent at /study", status=404)
    return found


# ---- pages -------------------------------------------------------------------------------------

@router.get("")
def study_page(request: Request, session: Session = Depends(db), account: Account | None = Depends(current_account),
               current: Study = Depends(evaluation_study)) -> HTMLResponse:
    """The page for where the visitor stands in the study."""
    if account is None:
        return render(request, "study_intro.html")
    if account.role != "player":
        raise HTTPException(status_code=403, detail=NOT_A_PARTICIPANT)
    found = flow.find_participant(session, current, account)
    if found is None:
        return render(request, "study_consent.html", {"error": None, "background": account.background or ""})
    state = flow.state(session, current, found)
    if state["status"] == "finished":
        return render(request, "study_thanks.html", {"state": state})
    return render(request, "study_question.html", {"state": state})


@router.post("/enrol", dependencies=[Depends(check_csrf)])
def enrol_form(request: Request, background: str = Form("", max_length=16), consent: str = Form("", max_length=8),
               session: Session = Depends(db), account: Account = Depends(participant_role),
               current: Study = Depends(evaluation_study)) -> Response:
    try:
        flow.enrol(session, current, account, background, consent == "yes")
    except flow.EvalError as exc:
        session.rollback()
        return render(request, "study_consent.html", {"error": str(exc), "background": background},
                      status_code=exc.status)
    return RedirectResponse("/study", status_code=303)


@router.get("/admin")
def admin_page(request: Request, session: Session = Depends(db), me: Account = Depends(admin),
               current: Study = Depends(evaluation_study)) -> HTMLResponse:
    return render(request, "study_admin.html", {"progress": progress(session, current)})


# ---- JSON --------------------------------------------------------------------------------------

@router.get("/api/state")
def api_state(session: Session = Depends(db), current: Study = Depends(evaluation_study),
              who: EvalParticipant = Depends(participant)) -> dict[str, Any]:
    """The participant's progress and current question (recording when it was first shown)."""
    return flow.state(session, current, who)


@router.post("/api/enrol", dependencies=[Depends(check_csrf)])
def api_enrol(body: EnrolIn, session: Session = Depends(db), account: Account = Depends(participant_role),
              current: Study = Depends(evaluation_study)) -> dict[str, Any]:
    """Enrol (or find the existing participation) and return the state."""
    found = flow.enrol(session, current, account, body.background, body.consent)
    return flow.state(session, current, found)


@router.post("/api/questions/{question_id}/answer", dependencies=[Depends(check_csrf)])
def api_answer(question_id: str, body: AnswerIn, session: Session = Depends(db),
               current: Study = Depends(evaluation_study),
               who: EvalParticipant = Depends(participant)) -> dict[str, Any]:
    """Answer the current question; the new state. 409 when it is answered already or not current."""
    return flow.submit(session, current, who, question_id, body.model_dump(exclude_none=True))


@router.get("/api/questions/{question_id}/image.png")
def api_image(question_id: str, session: Session = Depends(db), current: Study = Depends(evaluation_study),
              who: EvalParticipant = Depends(participant)) -> Response:
    return Response(flow.image_png(session, current, who, question_id), media_type="image/png",
                    headers=PICTURE_HEADERS)


@router.get("/api/questions/{question_id}/pictures/{letter}.png")
def api_picture(question_id: str, letter: str, session: Session = Depends(db),
                current: Study = Depends(evaluation_study), who: EvalParticipant = Depends(participant)) -> Response:
    return Response(flow.picture_png(session, current, who, question_id, letter), media_type="image/png",
                    headers=PICTURE_HEADERS)


@router.get("/api/admin/progress")
def api_progress(session: Session = Depends(db), me: Account = Depends(admin),
                 current: Study = Depends(evaluation_study)) -> dict[str, Any]:
    return progress(session, current)
