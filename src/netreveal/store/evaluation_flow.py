"""Taking part in an evaluation study: enrolment, the next question, answers, pictures.

Rules
-----
* Any account may enrol once per study, declaring a background (novice or expert) and giving
  consent. Enrolment gives the next free ``slot`` (0, 1, 2...: consecutive slots get the two
  halves of the with/without split of forward simulation), the pseudonymous code
  ``p{slot:03d}`` and the participant's questions in order (:func:`netreveal.userstudy.assign`
  with the study's seed and the slot), kept as a snapshot. Enrolling again returns the same
  participant.
* Questions are answered one at a time, in the assigned order: the current question is the
  first one without an answer, so a participant who leaves resumes there. The browser only ever
  receives :func:`netreveal.userstudy.participant_view` data (no method names, no correct
  answer, no image key) and asks for pictures by question id and letter.
* The server records when a question was first shown (``shown_at``) and when it was answered, and
  creates the responses itself (:func:`netreveal.userstudy.record_rating` /
  :func:`~netreveal.userstudy.record_answer`): letters are resolved to methods and correctness is
  computed here. A rating question is answered in one request with every letter on every scale.
* One answer per participant and question, enforced by the database: answering an answered
  question again is refused with 409 and changes nothing (not idempotent: the first answer
  stands, whatever the repeat says). So is answering out of order (409) or a question that is
  not the participant's (404).
* A participant sees the pictures of the current question only (not those of answered or later
  questions, nor any other picture of the study).

Functions raise :class:`EvalError` (with an HTTP-like ``status``) for refused requests and store
nothing for them; they flush but do not commit. The userstudy package (and scipy with it) is
imported on first use, not with this module.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netreveal.errors import NetrevealError
from netreveal.store.evaluation import KIND, load_design, study_seed
from netreveal.store.models import (
    Account,
    EvalParticipant,
    EvalPicture,
    EvalQuestion,
    EvalResponse,
    Media,
    Study,
    StudyImage,
)

if TYPE_CHECKING:
    from netreveal.userstudy import Question

BACKGROUNDS = ("novice", "expert")
COMMENT_MAX = 2000
CHOICE_MAX = 80
_ENROL_ATTEMPTS = 8


class EvalError(NetrevealError):
    """A refused request; ``status`` is the HTTP status the web app answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_study(study: Study) -> Study:
    """``study`` when it is an evaluation study; EvalError (404) otherwise."""
    if study.kind != KIND:
        raise EvalError("this study has no evaluation questions (it is not an evaluation study)", status=404)
    return study


def find_participant(session: Session, study: Study, account: Account) -> EvalParticipant | None:
    """The account's participation in ``study``, if it enrolled."""
    return session.scalars(select(EvalParticipant).where(EvalParticipant.study_id == study.id,
                                                         EvalParticipant.account_id == account.id)).first()


def enrol(session: Session, study: Study, account: Account, background: Any, consent: Any) -> EvalParticipant:
    """Enrol ``account`` (see the module rules); its existing participation when it already did."""
    from netreveal.userstudy.design import assign

    check_study(study)
    if consent is not True:
        raise EvalError("please give your consent to take part")
    if background not in BACKGROUNDS:
        raise EvalError("background must be novice or expert")
    found = find_participant(session, study, account)
    if found is not None:
        return found
    design = load_design(session, study)
    seed = study_seed(study)
    for _ in range(_ENROL_ATTEMPTS):
        slot = session.scalar(select(func.coalesce(func.max(EvalParticipant.slot) + 1, 0))
                              .where(EvalParticipant.study_id == study.id))
        code = f"p{slot:03d}"
        questions = assign(design, code, seed, slot=slot)
        participant = EvalParticipant(study_id=study.id, account_id=account.id, code=code, background=background,
                                      slot=slot, assignment=[q.to_dict() for q in questions], enrolled_at=_now())
        try:
            with session.begin_nested():
                session.add(participant)
                session.flush()
            return participant
        except IntegrityError:  # another enrolment took the slot (or this account enrolled meanwhile)
            found = find_participant(session, study, account)
            if found is not None:
                return found
    raise EvalError("too many people are enrolling at once: try again", status=409)


def assigned(participant: EvalParticipant) -> list[Question]:
    """The participant's questions, in the order they are asked."""
    from netreveal.userstudy.records import Question

    return [Question.from_dict(q) for q in participant.assignment]


def answered(session: Session, participant: EvalParticipant) -> set[str]:
    """Ids of the questions the participant answered."""
    query = (select(EvalQuestion.question).join(EvalResponse, EvalResponse.question_id == EvalQuestion.id)
             .where(EvalResponse.participant_id == participant.id).distinct())
    return set(session.scalars(query))


def _current(questions: list[Question], done: set[str]) -> tuple[int, Question | None]:
    for number, q in enumerate(questions, start=1):
        if q.id not in done:
            return number, q
    return len(questions) + 1, None


def state(session: Session, study: Study, participant: EvalParticipant) -> dict[str, Any]:
    """Where the participant stands: ``status`` "question" (with the current question as the
    participant may see it, ``number`` and ``total``) or "finished". Showing a question for the
    first time records when (``shown_at``)."""
    from netreveal.userstudy.design import participant_view

    questions = assigned(participant)
    done = answered(session, participant)
    number, question = _current(questions, done)
    out: dict[str, Any] = {"answered": len(done), "total": len(questions), "background": participant.background}
    if question is None:
        if participant.finished_at is None:
            participant.finished_at = _now()
            session.flush()
        out["status"] = "finished"
        return out
    if participant.current_question != question.id:
        participant.current_question = question.id
        participant.shown_at = _now()
        session.flush()
    view = participant_view(question)
    view.update({"number": number, "total": len(questions)})
    out.update({"status": "question", "question": view})
    return out


def _question_of(participant: EvalParticipant, question_id: Any) -> Question:
    if isinstance(question_id, str):
        for q in assigned(participant):
            if q.id == question_id:
                return q
    raise EvalError("no such question", status=404)


def _template_row(session: Session, study: Study, question_id: str) -> EvalQuestion:
    row = session.scalars(select(EvalQuestion).where(EvalQuestion.study_id == study.id,
                                                     EvalQuestion.question == question_id)).first()
    if row is None:
        raise EvalError("no such question", status=404)
    return row


def clean_comment(text: Any) -> str:
    """A comment as stored: NFC, trimmed, at most COMMENT_MAX characters; line breaks and tabs are
    the only control characters allowed. EvalError (400) otherwise."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise EvalError("text must be a string")
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").strip()
    if len(text) > COMMENT_MAX:
        raise EvalError(f"the comment is too long ({len(text)} characters, at most {COMMENT_MAX})")
    for ch in text:
        if ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise EvalError(f"the comment has a character that is not allowed (U+{ord(ch):04X})")
    return text


def _responses(question: Question, participant: EvalParticipant, answer: dict[str, Any], shown_at, answered_at):
    from netreveal.userstudy.records import LIKERT, SCALES, record_answer, record_rating

    stamps = {"shown_at": shown_at, "answered_at": answered_at}
    if question.kind == "rating":
        ratings = answer.get("ratings")
        if not isinstance(ratings, dict) or set(ratings) != set(question.methods):
            raise EvalError(f"rate every explanation: {', '.join(question.methods)}")
        out = []
        for letter in question.methods:
            values = ratings[letter]
            if not isinstance(values, dict) or set(values) != set(SCALES):
                raise EvalError(f"rate explanation {letter} on every scale: {', '.join(SCALES)}")
            for scale in SCALES:
                value = values[scale]
                if isinstance(value, bool) or not isinstance(value, int) or not LIKERT[0] <= value <= LIKERT[1]:
                    raise EvalError(f"ratings are whole numbers from {LIKERT[0]} to {LIKERT[1]}")
                out.append(record_rating(question, participant.code, letter, scale, value, **stamps))
        return out
    if question.kind == "comment":
        return [record_answer(question, participant.code, text=clean_comment(answer.get("text")), **stamps)]
    choice = answer.get("choice")
    if not isinstance(choice, str) or len(choice) > CHOICE_MAX or choice not in question.options:
        raise EvalError("choose one of the options")
    return [record_answer(question, participant.code, choice, **stamps)]


def submit(session: Session, study: Study, participant: EvalParticipant, question_id: Any,
           answer: dict[str, Any]) -> dict[str, Any]:
    """Store the answer to the participant's current question (see the module rules) and return
    the new :func:`state`. ``answer``: ``{"ratings": {letter: {scale: 1..5}}}`` for a rating
    question, ``{"choice": option}`` for forward simulation and attention checks, ``{"text": ...}``
    for the comment."""
    check_study(study)
    question = _question_of(participant, question_id)
    done = answered(session, participant)
    if question.id in done:
        raise EvalError("this question is already answered", status=409)
    _, current = _current(assigned(participant), done)
    if current is None or current.id != question.id:
        raise EvalError("answer the questions in order: reload to get the current one", status=409)
    now = _now()
    shown = participant.shown_at if participant.current_question == question.id else None
    responses = _responses(question, participant, answer if isinstance(answer, dict) else {}, shown, now)
    row = _template_row(session, study, question.id)
    try:
        with session.begin_nested():
            session.add_all(
                EvalResponse(participant_id=participant.id, question_id=row.id, kind=r.kind, condition=r.condition,
                             method=r.method or "", scale=r.scale or "", value=r.value, choice=r.choice,
                             correct=r.correct, text=r.text, shown_at=shown, answered_at=now)
                for r in responses)
            session.flush()
    except IntegrityError:  # the same answer arrived twice at once: the other one was stored
        raise EvalError("this question is already answered", status=409) from None
    return state(session, study, participant)


def _visible(session: Session, participant: EvalParticipant, question_id: Any) -> Question:
    """The participant's question when its pictures may be shown (it is the current one); 404 else."""
    question = _question_of(participant, question_id)
    _, current = _current(assigned(participant), answered(session, participant))
    if current is None or current.id != question.id:
        raise EvalError("no such picture", status=404)
    return question


def image_png(session: Session, study: Study, participant: EvalParticipant, question_id: Any) -> bytes:
    """The input image of one of the participant's questions."""
    question = _visible(session, participant, question_id)
    if not question.image:
        raise EvalError("no such picture", status=404)
    row = _template_row(session, study, question.id)
    png = session.scalar(select(Media.png).join(StudyImage, StudyImage.media_id == Media.id)
                         .where(StudyImage.id == row.image_id))
    if png is None:
        raise EvalError("no such picture", status=404)
    return png


def picture_png(session: Session, study: Study, participant: EvalParticipant, question_id: Any, letter: Any) -> bytes:
    """The explanation shown under ``letter`` of one of the participant's questions (the
    participant's letters are mapped to the stored template letters here)."""
    question = _visible(session, participant, question_id)
    if not isinstance(letter, str) or letter not in question.methods:
        raise EvalError("no such picture", status=404)
    method = question.methods[letter]
    row = _template_row(session, study, question.id)
    stored = next((k for k, m in row.methods.items() if m == method), None)
    png = session.scalar(select(Media.png).join(EvalPicture, EvalPicture.media_id == Media.id)
                         .where(EvalPicture.question_id == row.id, EvalPicture.letter == stored))
    if png is None:
        raise EvalError("no such picture", status=404)
    return png


__all__ = ["BACKGROUNDS", "EvalError", "answered", "assigned", "check_study", "clean_comment", "enrol",
           "find_participant", "image_png", "picture_png", "state", "submit"]
