"""Studies in the store: names and lookups, the summary list, the labels of a study, the rows of
an export and the batched inserts a new study is written with.

Everything here is persistence: the work around it (running the model, reveal frames, PNGs,
writing export folders) lives in :mod:`netreveal.studies`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netreveal.errors import NetrevealError
from netreveal.store.building import check_ready, name_in_use
from netreveal.store.db import Store
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Game,
    Guess,
    Item,
    Media,
    RevealFrame,
    Study,
    StudyImage,
)
from netreveal.store.records import LabelRecord

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# column sizes of the schema (models.py), checked before anything is written
MAX_KEY, MAX_CLASS, MAX_LAYER, MAX_TEXT, MAX_PLAYER, MAX_LANGUAGE = 200, 80, 200, 200, 40, 8


# ---------------------------------------------------------------------------------------------
# names and lookups


def validate_study_name(name: str) -> str:
    """``name`` if it is 1-80 letters, digits, ``-`` or ``_``; else a :class:`NetrevealError`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise NetrevealError(f"bad study name {name!r}: use 1-80 letters, digits, '-' or '_'")
    return name


def get_study(session: Session, name: str) -> Study:
    """The complete study called ``name``; an unknown name raises an error listing the known ones,
    a study still being written one saying so."""
    study = session.scalars(select(Study).where(Study.name == name)).first()
    if study is None:
        known = session.scalars(select(Study.name).order_by(Study.name).limit(20)).all()
        hint = f"; studies: {', '.join(known)}" if known else "; the database has no study"
        raise NetrevealError(f"unknown study {name!r}{hint}")
    return check_ready(study)


def study_exists(store: Store, name: str) -> bool:
    """True when ``store`` holds a study called ``name`` (complete, or being created)."""
    with store.session() as session:
        return name_in_use(session, name)


def study_kind(store: Store, name: str) -> str | None:
    """The kind of study ``name`` (None when there is none)."""
    with store.session() as session:
        return session.scalars(select(Study.kind).where(Study.name == name)).first()


def list_studies(store: Store) -> list[dict[str, Any]]:
    """One summary per study, oldest first: id, name, kind, created, ready (False while being
    written), images, items, labels."""
    with store.session() as session:
        images = dict(session.execute(select(StudyImage.study_id, func.count()).group_by(StudyImage.study_id)).all())
        items = dict(session.execute(select(Item.study_id, func.count()).group_by(Item.study_id)).all())
        labels = dict(
            session.execute(
                select(Item.study_id, func.count())
                .join(Guess, Guess.item_id == Item.id)
                .where(Guess.text != "")
                .group_by(Item.study_id)
            ).all()
        )
        return [
            {
                "id": s.id,
                "name": s.name,
                "kind": s.kind,
                "created": s.created_at,
                "ready": s.ready,
                "images": images.get(s.id, 0),
                "items": items.get(s.id, 0),
                "labels": labels.get(s.id, 0),
            }
            for s in session.scalars(select(Study).order_by(Study.id))
        ]


def study_labels(store: Store, name: str) -> list[LabelRecord]:
    """Every guess with text of study ``name`` as a :class:`LabelRecord`, oldest first."""
    with store.session() as session:
        study = get_study(session, name)
        query = (
            select(Guess, Item, StudyImage, Account.username)
            .join(Item, Guess.item_id == Item.id)
            .join(StudyImage, Item.image_id == StudyImage.id)
            .outerjoin(Account, Guess.player_id == Account.id)
            .where(Item.study_id == study.id, Guess.text != "")
            .order_by(Guess.id)
        )
        return [
            LabelRecord(
                item_id=str(item.id),
                image=image.key,
                image_class=image.predicted_class,
                layer=item.layer,
                cluster=int(item.cluster),
                weight=float(item.weight),
                text=guess.text,
                step=int(guess.step),
                correct=bool(guess.correct),
                player=guess.player_name or username or "",
                language=guess.language or "en",
            )
            for guess, item, image, username in session.execute(query)
            if guess.text.strip()
        ]


def media_pngs(store: Store | Session, media_ids: Sequence[int], chunk: int = 500) -> Iterator[tuple[int, bytes]]:
    """``(media id, PNG bytes)`` of the given media rows, ``chunk`` per query (unknown ids are skipped)."""
    wanted = sorted({int(m) for m in media_ids})
    if isinstance(store, Session):
        for start in range(0, len(wanted), chunk):
            yield from store.execute(select(Media.id, Media.png).where(Media.id.in_(wanted[start : start + chunk])))
        return
    with store.session() as session:
        yield from media_pngs(session, wanted, chunk)


# ---------------------------------------------------------------------------------------------
# the rows of an export


EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "study": ("id", "name", "kind", "model", "classes", "layers", "params", "created_at"),
    "images": ("id", "study_id", "key", "true_class", "predicted_class", "probability", "media_id"),
    "items": ("id", "study_id", "image_id", "layer", "depth", "cluster", "weight", "channels", "map_media_id",
              "label_count"),
    "reveal_frames": ("item_id", "step", "percent", "media_id"),
    "games": ("id", "player_id", "item_id", "step", "outcome", "points", "started_at", "finished_at"),
    "guesses": ("id", "request_id", "game_id", "item_id", "player_id", "player_name", "step", "guessed_class",
                "text", "language", "correct", "source", "created_at"),
    "concepts": ("id", "study_id", "annotator_id", "name", "removed", "created_at", "updated_at"),
    "concept_members": ("concept_id", "item_id", "annotator_id"),
    "concept_events": ("id", "concept_id", "annotator_id", "action", "detail", "at"),
    "accounts": ("id", "username", "role", "background", "created_at"),
}


def export_tables(session: Session, study: Study) -> dict[str, list[dict]]:
    """Every record of ``study`` by table (:data:`EXPORT_COLUMNS`), with the accounts that took
    part (never password hashes or sessions)."""
    item_ids = select(Item.id).where(Item.study_id == study.id).scalar_subquery()
    concept_ids = select(Concept.id).where(Concept.study_id == study.id).scalar_subquery()
    queries = {
        "study": select(Study).where(Study.id == study.id),
        "images": select(StudyImage).where(StudyImage.study_id == study.id).order_by(StudyImage.id),
        "items": select(Item).where(Item.study_id == study.id).order_by(Item.id),
        "reveal_frames": select(RevealFrame).where(RevealFrame.item_id.in_(item_ids))
        .order_by(RevealFrame.item_id, RevealFrame.step),
        "games": select(Game).where(Game.item_id.in_(item_ids)).order_by(Game.id),
        "guesses": select(Guess).where(Guess.item_id.in_(item_ids)).order_by(Guess.id),
        "concepts": select(Concept).where(Concept.study_id == study.id).order_by(Concept.id),
        "concept_members": select(ConceptMember).where(ConceptMember.concept_id.in_(concept_ids))
        .order_by(ConceptMember.concept_id, ConceptMember.item_id),
        "concept_events": select(ConceptEvent).where(ConceptEvent.concept_id.in_(concept_ids))
        .order_by(ConceptEvent.id),
    }
    tables = {
        table: [{c: getattr(obj, c) for c in EXPORT_COLUMNS[table]} for obj in session.scalars(query)]
        for table, query in queries.items()
    }
    people = {
        row[key]
        for table, key in (("games", "player_id"), ("guesses", "player_id"), ("concepts", "annotator_id"),
                           ("concept_members", "annotator_id"), ("concept_events", "annotator_id"))
        for row in tables[table]
        if row[key] is not None
    }
    accounts = (session.scalars(select(Account).where(Account.id.in_(sorted(people))).order_by(Account.id))
                if people else [])
    tables["accounts"] = [{c: getattr(a, c) for c in EXPORT_COLUMNS["accounts"]} for a in accounts]
    return tables


def export_media_ids(tables: Mapping[str, list[dict]]) -> list[int]:
    """The media rows an export's tables refer to."""
    ids = {r["media_id"] for r in tables["images"]} | {r["map_media_id"] for r in tables["items"]}
    ids |= {r["media_id"] for r in tables["reveal_frames"]}
    return sorted(ids)


# ---------------------------------------------------------------------------------------------
# inserting a new study's rows (one batch per call, inside ``StudyWriter.batch()``)


@dataclass
class NewImage:
    """An input image of a new study, with its PNG."""

    key: str
    true_class: str | None
    predicted_class: str
    probability: float
    png: bytes


@dataclass
class NewItem:
    """An item of a new study: ``image`` indexes the study's images in insert order; ``frames`` are
    the PNGs of its reveal frames, step 1 first."""

    image: int
    layer: str
    depth: int
    cluster: int
    weight: float
    channels: list[int]
    png: bytes
    frames: list[bytes] = field(default_factory=list)


def insert_images(session: Session, study_id: int, images: Sequence[NewImage]) -> list[int]:
    """Insert images with their pictures; returns their ids in order."""
    media = [Media(study_id=study_id, png=r.png) for r in images]
    session.add_all(media)
    session.flush()
    rows = [
        StudyImage(study_id=study_id, key=r.key, true_class=r.true_class, predicted_class=r.predicted_class,
                   probability=r.probability, media_id=m.id)
        for r, m in zip(images, media)
    ]
    session.add_all(rows)
    session.flush()
    return [int(row.id) for row in rows]


def insert_items(session: Session, study_id: int, image_ids: Sequence[int], items: Sequence[NewItem],
                 percents: Sequence[float]) -> None:
    """Insert items with their cluster maps and reveal frames (``percents[step - 1]`` per frame)."""
    maps = [Media(study_id=study_id, png=r.png) for r in items]
    frames = [[Media(study_id=study_id, png=f) for f in r.frames] for r in items]
    session.add_all(maps)
    session.add_all([m for row in frames for m in row])
    session.flush()
    rows = [
        Item(study_id=study_id, image_id=image_ids[r.image], layer=r.layer, depth=r.depth, cluster=r.cluster,
             weight=r.weight, channels=r.channels, map_media_id=m.id, label_count=0)
        for r, m in zip(items, maps)
    ]
    session.add_all(rows)
    session.flush()
    session.add_all(
        RevealFrame(item_id=item.id, step=step, percent=float(percents[step - 1]), media_id=m.id)
        for item, row in zip(rows, frames)
        for step, m in enumerate(row, start=1)
    )


__all__ = [
    "EXPORT_COLUMNS",
    "NewImage",
    "NewItem",
    "export_media_ids",
    "export_tables",
    "get_study",
    "insert_images",
    "insert_items",
    "list_studies",
    "media_pngs",
    "study_exists",
    "study_kind",
    "study_labels",
    "validate_study_name",
]
