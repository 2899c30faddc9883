"""Evaluation studies in the store: write one (images, design, pictures), read its design, data and
progress back, and the rows of its export. Creating one with a model, analysing and exporting it
are services (:mod:`netreveal.studies.evaluation`).

An evaluation study (``Study.kind == "evaluation"``) asks people to rate explanations and to
predict the model's output with and without them (:mod:`netreveal.userstudy`). Creating one runs
every method on every image, renders each explanation as a PNG overlay, builds the question
template with :func:`netreveal.userstudy.make_design` and stores images, questions and pictures in
batches of short transactions (:mod:`netreveal.store.building`); the design's seed and the
methods go to ``Study.params``. Explanations are stored per question under the template's
anonymous letters (``eval_pictures``), never by method name. Participants take the study through
:mod:`netreveal.store.evaluation_flow`.

Heavy imports (torch, the methods, scipy) happen inside the functions that need them, so the web
app can import this module cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netreveal.errors import NetrevealError
from netreveal.store.building import check_ready, study_in_batches
from netreveal.store.db import Store
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
    from netreveal.userstudy import Question, Response, StudyData

KIND = "evaluation"
MAX_KEY, MAX_CLASS, MAX_METHOD = 200, 80, 40  # column sizes (models.py)


# ---------------------------------------------------------------------------------------------
# lookups


def get_evaluation(session: Session, name: str) -> Study:
    """The evaluation study called ``name`` (NetrevealError for an unknown name or another kind)."""
    study = session.scalars(select(Study).where(Study.name == name)).first()
    if study is None:
        known = session.scalars(select(Study.name).where(Study.kind == KIND).order_by(Study.name).limit(20)).all()
        hint = f"; evaluation studies: {', '.join(known)}" if known else "; the database has no evaluation study"
        raise NetrevealError(f"unknown study {name!r}{hint}")
    if study.kind != KIND:
        raise NetrevealError(f"study {name!r} is a {study.kind} study, not an evaluation study")
    return check_ready(study)


def load_design(session: Session, study: Study) -> list[Question]:
    """The study's design template, in its stored order."""
    from netreveal.userstudy.records import Question

    rows = session.scalars(select(EvalQuestion).where(EvalQuestion.study_id == study.id)
                           .order_by(EvalQuestion.position))
    return [Question(id=q.question, kind=q.kind, image=q.image, methods=dict(q.methods), answer=q.answer,
                     prompt=q.prompt, options=tuple(q.options)) for q in rows]


def study_seed(study: Study) -> int:
    """The seed that assigns the design to participants (``Study.params["seed"]``)."""
    try:
        return int(study.params["seed"])
    except (KeyError, TypeError, ValueError):
        raise NetrevealError(f"study {study.name!r} has no design seed in its parameters") from None


def study_methods(study: Study) -> list[str]:
    """The compared methods, in the order given at creation."""
    return [str(m) for m in (study.params or {}).get("methods", [])]


# ---------------------------------------------------------------------------------------------
# writing a study


@dataclass
class EvalImage:
    """One image of an evaluation study with what the model made of it and its explanations.

    ``png`` is the picture as shown; ``explanations`` maps each method to its explanation picture
    (PNG bytes, e.g. a heatmap overlay). ``predicted_class`` is the answer of forward-simulation
    questions on this image.
    """

    key: str
    png: bytes
    predicted_class: str
    probability: float
    true_class: str | None = None
    explanations: dict[str, bytes] = field(default_factory=dict)


def write_evaluation_study(
    store: Store,
    name: str,
    *,
    model: str,
    classes: Sequence[str],
    methods: Sequence[str],
    design: Sequence[Question],
    seed: int,
    images: Sequence[EvalImage],
    params: Mapping[str, Any] | None = None,
    chunk: int = 64,
) -> int:
    """Store an evaluation study, ``chunk`` images or questions (with their pictures) per
    transaction; returns its id. The study is unfinished (not served or exported) until the last
    batch; any error removes it again.

    ``design`` is a question template (:func:`netreveal.userstudy.make_design`) over the keys of
    ``images``; every method a rating or forward question shows needs an explanation picture of
    that question's image. ``seed`` (the design's seed, used again to assign it to participants)
    and ``methods`` go into ``Study.params`` with ``params``. Everything is checked before anything
    is written; an existing name is an error and changes nothing.
    """
    from netreveal.store.json_values import json_safe
    from netreveal.store.studies import validate_study_name

    validate_study_name(name)
    methods = [str(m) for m in methods]
    _check_study_inputs(classes, methods, design, images)
    if chunk < 1:
        raise NetrevealError(f"chunk must be at least 1, got {chunk}")
    by_key = {image.key: image for image in images}
    stored = dict(params or {})
    stored.update({"seed": int(seed), "methods": methods})
    stored.setdefault("counts", {"images": len(images), "questions": len(design)})
    study = Study(name=name, kind=KIND, model=str(model), classes=[str(c) for c in classes], layers=[],
                  params=json_safe(stored))
    with study_in_batches(store, study) as writer:
        image_ids: dict[str, int] = {}
        for start in range(0, len(images), chunk):
            with writer.batch() as session:
                image_ids.update(_write_images(session, writer.study_id, images[start : start + chunk]))
        for start in range(0, len(design), chunk):
            with writer.batch() as session:
                _write_questions(session, writer.study_id, design, start, start + chunk, image_ids, by_key)
        return writer.study_id


def _write_questions(session: Session, study_id: int, design: Sequence[Question], start: int, stop: int,
                     image_ids: Mapping[str, int], by_key: Mapping[str, EvalImage]) -> None:
    for position in range(start, min(stop, len(design))):
        q = design[position]
        row = EvalQuestion(study_id=study_id, question=q.id, position=position, kind=q.kind, image=q.image,
                           image_id=image_ids[q.image] if q.image else None, methods=dict(q.methods),
                           answer=q.answer, prompt=q.prompt, options=list(q.options))
        session.add(row)
        session.flush()
        if q.kind in ("rating", "forward"):
            pictures = [Media(study_id=study_id, png=by_key[q.image].explanations[m]) for m in q.methods.values()]
            session.add_all(pictures)
            session.flush()
            session.add_all(EvalPicture(question_id=row.id, letter=letter, media_id=media.id)
                            for letter, media in zip(q.methods, pictures))


def _check_study_inputs(classes: Sequence[str], methods: list[str], design: Sequence[Question],
                        images: Sequence[EvalImage]) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise NetrevealError("an evaluation study needs at least two distinct class names")
    for c in classes:
        if len(str(c)) > MAX_CLASS:
            raise NetrevealError(f"class name {str(c)[:40]!r}... is longer than {MAX_CLASS} characters")
    if not methods or len(set(methods)) != len(methods):
        raise NetrevealError("an evaluation study needs one or more distinct methods")
    for m in methods:
        if not m or len(m) > MAX_METHOD:
            raise NetrevealError(f"method name {m[:40]!r} must be 1-{MAX_METHOD} characters")
    if not images:
        raise NetrevealError("an evaluation study needs at least one image")
    keys = [image.key for image in images]
    if len(set(keys)) != len(keys):
        raise NetrevealError("image keys must be distinct")
    for image in images:
        if not image.key or len(image.key) > MAX_KEY:
            raise NetrevealError(f"image key {image.key[:40]!r} must be 1-{MAX_KEY} characters")
        if image.predicted_class not in classes:
            raise NetrevealError(f"image {image.key!r}: predicted class {image.predicted_class!r} is not a class")
    if not design:
        raise NetrevealError("the design has no question")
    by_key = {image.key: image for image in images}
    ids = [q.id for q in design]
    if len(set(ids)) != len(ids):
        raise NetrevealError("the design lists a question id twice")
    for q in design:
        if len(q.id) > 40:
            raise NetrevealError(f"question id {q.id[:40]!r}... is longer than 40 characters")
        if q.kind in ("rating", "forward"):
            if q.image not in by_key:
                raise NetrevealError(f"question {q.id!r} shows image {q.image!r}, which is not among the images")
            unknown = set(q.methods.values()) - set(methods)
            if unknown:
                raise NetrevealError(f"question {q.id!r} shows method(s) {sorted(unknown)} not in the study's methods")
            missing = [m for m in q.methods.values() if m not in by_key[q.image].explanations]
            if missing:
                raise NetrevealError(f"image {q.image!r} has no explanation by {missing[0]!r}")
        if q.answer is not None and len(q.answer) > MAX_CLASS:
            raise NetrevealError(f"question {q.id!r}: the answer is longer than {MAX_CLASS} characters")


def _write_images(session: Session, study_id: int, images: Sequence[EvalImage]) -> dict[str, int]:
    media = [Media(study_id=study_id, png=image.png) for image in images]
    session.add_all(media)
    session.flush()
    rows = {image.key: StudyImage(study_id=study_id, key=image.key, true_class=image.true_class,
                                  predicted_class=image.predicted_class, probability=float(image.probability),
                                  media_id=m.id) for image, m in zip(images, media)}
    session.add_all(rows.values())
    session.flush()
    return {key: int(row.id) for key, row in rows.items()}


# ---------------------------------------------------------------------------------------------
# the data of a study


def _aware(stamp: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they are UTC."""
    if stamp is not None and stamp.tzinfo is None:
        return stamp.replace(tzinfo=timezone.utc)
    return stamp


def iso_time(stamp: datetime | None) -> str | None:
    stamp = _aware(stamp)
    return stamp.isoformat() if stamp is not None else None


def to_response(row: EvalResponse, participant: str, question: EvalQuestion) -> Response:
    """A stored response as a :class:`netreveal.userstudy.Response`."""
    from netreveal.userstudy.records import Response

    return Response(participant=participant, question=question.question, kind=row.kind, image=question.image,
                    method=row.method or None, condition=row.condition, scale=row.scale or None, value=row.value,
                    choice=row.choice, correct=row.correct, text=row.text or "",
                    shown_at=iso_time(row.shown_at), answered_at=iso_time(row.answered_at))


def study_data(store: Store, name: str, *, finished_only: bool = False) -> StudyData:
    """The design, seed, participants and responses of study ``name`` as a
    :class:`netreveal.userstudy.StudyData` (participants by their pseudonymous codes).

    ``finished_only`` keeps the participants who answered every question."""
    from netreveal.userstudy.records import Participant, StudyData

    with store.session() as session:
        study = get_evaluation(session, name)
        design = load_design(session, study)
        query = select(EvalParticipant).where(EvalParticipant.study_id == study.id).order_by(EvalParticipant.slot)
        if finished_only:
            query = query.where(EvalParticipant.finished_at.is_not(None))
        people = list(session.scalars(query))
        codes = {p.id: p.code for p in people}
        questions = {q.id: q for q in session.scalars(select(EvalQuestion).where(EvalQuestion.study_id == study.id))}
        responses = []
        ids = sorted(codes)
        for start in range(0, len(ids), 500):
            rows = session.scalars(select(EvalResponse).where(EvalResponse.participant_id.in_(ids[start:start + 500]))
                                   .order_by(EvalResponse.id))
            responses += [(row.id, to_response(row, codes[row.participant_id], questions[row.question_id]))
                          for row in rows]
        responses.sort(key=lambda pair: pair[0])
        return StudyData(design=design, seed=study_seed(study),
                         participants=[Participant(p.code, background=p.background, slot=p.slot) for p in people],
                         responses=[r for _, r in responses], title=study.name)


def question_counts(store: Store, study_id: int) -> dict[str, int]:
    """How many questions of each kind the design of study ``study_id`` holds."""
    with store.session() as session:
        return dict(session.execute(select(EvalQuestion.kind, func.count()).where(EvalQuestion.study_id == study_id)
                                    .group_by(EvalQuestion.kind)).all())


def progress(session: Session, study: Study) -> dict[str, Any]:
    """Participants enrolled and finished (by background), responses by kind, questions per participant."""
    enrolled = dict(session.execute(
        select(EvalParticipant.background, func.count()).where(EvalParticipant.study_id == study.id)
        .group_by(EvalParticipant.background)).all())
    finished = session.scalar(select(func.count()).where(EvalParticipant.study_id == study.id,
                                                         EvalParticipant.finished_at.is_not(None))) or 0
    kinds = dict(session.execute(
        select(EvalResponse.kind, func.count()).join(EvalParticipant, EvalParticipant.id == EvalResponse.participant_id)
        .where(EvalParticipant.study_id == study.id).group_by(EvalResponse.kind)).all())
    questions = dict(session.execute(
        select(EvalQuestion.kind, func.count()).where(EvalQuestion.study_id == study.id)
        .group_by(EvalQuestion.kind)).all())
    return {
        "study": study.name,
        "methods": study_methods(study),
        "questions": questions,
        "participants": sum(enrolled.values()),
        "finished": finished,
        "backgrounds": {str(k): v for k, v in enrolled.items()},
        "responses": kinds,
    }


# ---------------------------------------------------------------------------------------------
# export


EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "study": ("id", "name", "kind", "model", "classes", "layers", "params", "created_at"),
    "images": ("id", "study_id", "key", "true_class", "predicted_class", "probability", "media_id"),
    "eval_questions": ("id", "study_id", "question", "position", "kind", "image", "image_id", "methods", "answer",
                       "prompt", "options"),
    "eval_pictures": ("question_id", "letter", "media_id"),
    "eval_participants": ("id", "study_id", "account_id", "code", "background", "slot", "assignment",
                          "current_question", "shown_at", "enrolled_at", "finished_at"),
    "eval_responses": ("id", "participant_id", "question_id", "kind", "condition", "method", "scale", "value",
                       "choice", "correct", "text", "shown_at", "answered_at"),
    "accounts": ("id", "username", "role", "background", "created_at"),
}


def export_tables(session: Session, study: Study) -> dict[str, list[dict]]:
    questions = select(EvalQuestion.id).where(EvalQuestion.study_id == study.id).scalar_subquery()
    people = select(EvalParticipant.id).where(EvalParticipant.study_id == study.id).scalar_subquery()
    queries = {
        "study": select(Study).where(Study.id == study.id),
        "images": select(StudyImage).where(StudyImage.study_id == study.id).order_by(StudyImage.id),
        "eval_questions": select(EvalQuestion).where(EvalQuestion.study_id == study.id).order_by(EvalQuestion.position),
        "eval_pictures": select(EvalPicture).where(EvalPicture.question_id.in_(questions))
        .order_by(EvalPicture.question_id, EvalPicture.letter),
        "eval_participants": select(EvalParticipant).where(EvalParticipant.study_id == study.id)
        .order_by(EvalParticipant.slot),
        "eval_responses": select(EvalResponse).where(EvalResponse.participant_id.in_(people)).order_by(EvalResponse.id),
    }
    tables = {table: [{c: getattr(obj, c) for c in EXPORT_COLUMNS[table]} for obj in session.scalars(query)]
              for table, query in queries.items()}
    account_ids = sorted({r["account_id"] for r in tables["eval_participants"] if r["account_id"] is not None})
    accounts = (session.scalars(select(Account).where(Account.id.in_(account_ids)).order_by(Account.id))
                if account_ids else [])
    tables["accounts"] = [{c: getattr(a, c) for c in EXPORT_COLUMNS["accounts"]} for a in accounts]
    return tables


__all__ = [
    "EXPORT_COLUMNS",
    "EvalImage",
    "export_tables",
    "get_evaluation",
    "load_design",
    "progress",
    "question_counts",
    "study_data",
    "study_methods",
    "study_seed",
    "to_response",
    "write_evaluation_study",
]
