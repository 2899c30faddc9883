"""Evaluation studies in the store: create one (run the methods, render their explanations, build
the design), read its design and data back, analyse it, export it.

An evaluation study (``Study.kind == "evaluation"``) asks people to rate explanations and to
predict the model's output with and without them (:mod:`netreveal.userstudy`). Creating one runs
every method on every image, renders each explanation as a PNG overlay, builds the question
template with :func:`netreveal.userstudy.make_design` and stores images, questions and pictures in
batches of short transactions (:mod:`netreveal.store.building`); the design's seed and the methods go to ``Study.params``. Explanations are
stored per question under the template's anonymous letters (``eval_pictures``), never by method
name. Participants take the study through :mod:`netreveal.store.evaluation_flow`.

Heavy imports (torch, the methods, scipy) happen inside the functions that need them, so the web
app can import this module cheaply.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netreveal.csvtable import write_table
from netreveal.errors import NetrevealError
from netreveal.fileio import STUDY_EXPORT, check_output_folder, staged_folder
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
    from netreveal.userstudy import Analysis, Question, StudyData

KIND = "evaluation"
MAX_KEY, MAX_CLASS, MAX_METHOD = 200, 80, 40  # column sizes (models.py)
DISPLAY_MIN_SIZE = 224  # pictures smaller than this are enlarged (bicubic) before storing
EXPORT_FORMAT = "netreveal-evaluation-export"
EXPORT_VERSION = 1


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
# creating a study with a model


def create_evaluation_study(
    store: Store,
    name: str,
    adapter,
    inputs,
    methods: str | Sequence[str],
    *,
    n_forward: int | None = None,
    seed: int = 0,
    attention_every: int = 8,
    n_options: int = 4,
    batch_size: int = 8,
    layers: str = "last:9",
    progress: bool = False,
) -> int:
    """Run ``methods`` (names from :mod:`netreveal.methods`) on ``inputs``
    (:class:`netreveal.pipeline.Inputs`) and store an evaluation study; returns its id.

    Every method explains the model's predicted class. Its heatmap (INV: the combined map of the
    deepest layer) is shown as its positive part min-max scaled to [0, 1], overlaid on the image
    (:func:`netreveal.report.render.overlay`). The design comes from
    :func:`netreveal.userstudy.make_design` with ``seed``, ``n_forward`` forward-simulation images
    (default: half), one attention check per ``attention_every`` questions and ``n_options``
    choices per forward question (the model's next most likely classes first). INV explains
    ``layers``. Bad input (unknown method, a method without heatmaps, an existing name) fails
    before any work; nothing is stored on any error.
    """
    import torch

    from netreveal.methods import get_methods
    from netreveal.pipeline import check_runs, predict
    from netreveal.provenance import provenance
    from netreveal.store.json_values import json_safe
    from netreveal.store.studies import study_exists, validate_study_name
    from netreveal.userstudy.design import make_design

    validate_study_name(name)
    chosen = get_methods(methods)
    names = [m.name for m in chosen]
    if len(set(names)) != len(names):
        raise NetrevealError("a method is listed twice")
    for method in chosen:
        if method.heatmaps is None:
            raise NetrevealError(f"method {method.name!r} gives no heatmap to show; choose heatmap methods")
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    images = getattr(inputs, "images", None)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise NetrevealError("inputs must hold images as a (B, 3, H, W) tensor")
    n = images.shape[0]
    if len(inputs.keys) != n:
        raise NetrevealError("inputs have a different number of keys and images")
    if n < 2:
        raise NetrevealError("an evaluation study needs at least two images (one to rate, one to simulate)")
    if n_forward is not None and not 0 <= n_forward < n:
        raise NetrevealError(f"--forward must be between 0 and {n - 1} (the images minus one to rate)")
    if len(adapter.class_names) < 2:
        raise NetrevealError("the model needs at least two classes")
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")

    runs = [m.configure({"layers": layers, "batch_size": batch_size, "seed": seed, "progress": progress})
            for m in chosen]
    images = inputs.images.to(adapter.device)
    check_runs(runs, adapter, images[:1])
    probs = predict(adapter, images, batch_size).float().cpu()
    targets = probs.argmax(dim=1)
    heatmaps: dict[str, torch.Tensor] = {}
    for run in runs:
        result = run.run(adapter, images, targets.to(adapter.device))
        heatmaps[run.name] = display_maps(run.method.heatmaps(result), tuple(images.shape[-2:]))

    keys = [str(k) for k in inputs.keys]
    ranked = probs.argsort(dim=1, descending=True)[:, :max(2, n_options)]
    predictions = {k: [adapter.class_name(int(c)) for c in ranked[i]] for i, k in enumerate(keys)}
    design = make_design(keys, names, predictions, list(adapter.class_names), seed=seed, n_forward=n_forward,
                         attention_every=attention_every, n_options=n_options)
    records = []
    label_names = getattr(inputs, "label_names", None) or [None] * n
    for i, key in enumerate(keys):
        p = int(targets[i])
        records.append(EvalImage(
            key=key, png=picture_png(images[i]), predicted_class=adapter.class_name(p), probability=float(probs[i, p]),
            true_class=label_names[i],
            explanations={m: overlay_png(images[i], heatmaps[m][i]) for m in names}))
    params = {
        "design": {"n_forward": n_forward, "attention_every": attention_every, "n_options": n_options},
        "heatmaps": "positive part, min-max scaled to [0, 1], overlaid on the image; INV: deepest layer's combined map",
        "layers": layers,
        "input_size": list(images.shape[-2:]),
        "provenance": provenance(seed=int(seed), study=name, model=adapter.describe(), methods=names),
    }
    description = json.dumps(json_safe(adapter.describe()), sort_keys=True)
    return write_evaluation_study(store, name, model=description, classes=list(adapter.class_names), methods=names,
                                  design=design, seed=seed, images=records, params=params)


def display_maps(maps, size: tuple[int, int]):
    """Heatmaps (B, H, W) as shown: resized to ``size``, positive part, each min-max scaled to [0, 1]
    (a map with no positive value is scaled as it is)."""
    import torch

    from netreveal.imaging import minmax, upsample

    maps = torch.as_tensor(maps).detach().float()
    if maps.dim() != 3:
        raise NetrevealError(f"a method gave heatmaps of shape {tuple(maps.shape)}, not (B, H, W)")
    maps = upsample(maps.cpu(), size)
    positive = maps.clamp_min(0)
    has_positive = positive.flatten(1).amax(dim=1) > 0
    return minmax(torch.where(has_positive[:, None, None], positive, maps))


def picture_png(image, min_size: int = DISPLAY_MIN_SIZE) -> bytes:
    """A (3, H, W) image in [0, 1] as PNG, enlarged so its short side is at least ``min_size``."""
    from netreveal.report.render import to_pil

    return _png(to_pil(image, min_size=min_size))


def overlay_png(image, heatmap, min_size: int = DISPLAY_MIN_SIZE) -> bytes:
    """The heatmap (H, W) in [0, 1] blended over the image (3, H, W), as PNG (enlarged like the image)."""
    from netreveal.report.render import overlay, to_pil

    return _png(to_pil(overlay(image, heatmap), min_size=min_size))


def _png(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# the data of a study


def _aware(stamp: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they are UTC."""
    if stamp is not None and stamp.tzinfo is None:
        return stamp.replace(tzinfo=timezone.utc)
    return stamp


def _iso(stamp: datetime | None) -> str | None:
    stamp = _aware(stamp)
    return stamp.isoformat() if stamp is not None else None


def to_response(row: EvalResponse, participant: str, question: EvalQuestion):
    """A stored response as a :class:`netreveal.userstudy.Response`."""
    from netreveal.userstudy.records import Response

    return Response(participant=participant, question=question.question, kind=row.kind, image=question.image,
                    method=row.method or None, condition=row.condition, scale=row.scale or None, value=row.value,
                    choice=row.choice, correct=row.correct, text=row.text or "",
                    shown_at=_iso(row.shown_at), answered_at=_iso(row.answered_at))


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


def analyse_study(
    store: Store,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    finished_only: bool = False,
    confidence: float = 0.95,
    alpha: float = 0.05,
    title: str | None = None,
    force: bool = False,
) -> tuple[Analysis, Path | None]:
    """Analyse study ``name`` (:func:`netreveal.userstudy.analyse`: per-method means with
    confidence intervals, Wilcoxon signed-rank tests with Holm correction, forward simulation with
    and without explanations, novices vs experts; participants failing an attention check are
    excluded) and, with ``out_dir``, write the HTML report with the raw CSV and the analysis JSON
    (an earlier report there is replaced only with ``force``). Returns the analysis and the
    report's index path (None without ``out_dir``)."""
    from netreveal.userstudy import analyse, write_analysis_report

    data = study_data(store, name, finished_only=finished_only)
    if not data.responses:
        raise NetrevealError(f"study {name!r} has no responses to analyse yet")
    with store.session() as session:
        methods = study_methods(get_evaluation(session, name))
    analysis = analyse(data.responses, data.participants, questions=data.design, methods=methods or None,
                       confidence=confidence, alpha=alpha)
    if out_dir is None:
        return analysis, None
    return analysis, write_analysis_report(analysis, out_dir, title=title or f"Evaluation study {name}", force=force)


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


def export_evaluation(store: Store, name: str, out_dir: str | os.PathLike, *, media: bool = True,
                      force: bool = False) -> Path:
    """Write every record of evaluation study ``name`` to ``out_dir``: one CSV per table (study,
    images, eval_questions, eval_pictures, eval_participants, eval_responses and the accounts that
    took part, without password hashes), ``study.json`` with all of them, ``responses.csv`` (one
    row per response, analysis-ready, :data:`netreveal.userstudy.records.CSV_HEADER`),
    ``study-data.json`` (:class:`netreveal.userstudy.StudyData`) and, with ``media``, every
    picture as ``media/<media_id>.png``.

    Written to a staging folder renamed into place; an existing ``out_dir`` is replaced only
    when it is empty or (with ``force``) an earlier export.
    """
    from netreveal.store.json_values import json_safe
    from netreveal.userstudy.design import exclusions
    from netreveal.userstudy.records import write_responses_csv

    out = Path(out_dir)
    check_output_folder(out, STUDY_EXPORT, force=force)  # before reading the study
    data = study_data(store, name)
    with staged_folder(out, STUDY_EXPORT, force=force, label="export") as tmp:
        with store.session() as session:
            tables = _export_tables(session, get_evaluation(session, name))
            for table, rows in tables.items():
                write_table(tmp / f"{table}.csv", EXPORT_COLUMNS[table], rows)
            if media:
                (tmp / "media").mkdir()
                ids = sorted({r["media_id"] for r in tables["images"]} | {r["media_id"] for r in tables["eval_pictures"]})
                for start in range(0, len(ids), 500):
                    for media_id, png in session.execute(select(Media.id, Media.png)
                                                         .where(Media.id.in_(ids[start:start + 500]))):
                        (tmp / "media" / f"{media_id}.png").write_bytes(png)
        write_responses_csv(data.responses, tmp / "responses.csv", participants=data.participants,
                            excluded=exclusions(data.responses, data.design))
        data.save(tmp / "study-data.json")
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "media": "media/<media_id>.png" if media else None,
            **{table: [{k: _json_value(v, json_safe) for k, v in row.items()} for row in rows]
               for table, rows in tables.items()},
        }
        document["study"] = document["study"][0]
        (tmp / "study.json").write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def _export_tables(session: Session, study: Study) -> dict[str, list[dict]]:
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
    accounts = session.scalars(select(Account).where(Account.id.in_(account_ids)).order_by(Account.id)) if account_ids else []
    tables["accounts"] = [{c: getattr(a, c) for c in EXPORT_COLUMNS["accounts"]} for a in accounts]
    return tables


def _json_value(value: Any, json_safe) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return json_safe(value)


__all__ = [
    "EvalImage",
    "analyse_study",
    "create_evaluation_study",
    "display_maps",
    "export_evaluation",
    "get_evaluation",
    "load_design",
    "overlay_png",
    "picture_png",
    "progress",
    "study_data",
    "study_methods",
    "study_seed",
    "to_response",
    "write_evaluation_study",
]
