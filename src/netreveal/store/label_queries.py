"""What the label analysis and the simulated crowd read from (and the crowd writes to) a study,
as plain records: :class:`~netreveal.store.records.StudyRecord`, :class:`ImageRef`, :class:`ItemRef`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.models import (
    Account,
    Concept,
    ConceptMember,
    Guess,
    Item,
    Media,
    Study,
    StudyImage,
)
from netreveal.store.records import ImageRef, ItemRef, StudyRecord
from netreveal.store.studies import get_study, media_pngs


def _study_record(study: Study) -> StudyRecord:
    return StudyRecord(id=study.id, name=study.name, kind=study.kind, model=study.model,
                       classes=[str(c) for c in study.classes], layers=[str(x) for x in study.layers],
                       params=dict(study.params or {}))


def study_record(store: Store, name: str) -> StudyRecord:
    """The complete study ``name`` (an error naming the known ones when there is none)."""
    with store.session() as session:
        return _study_record(get_study(session, name))


def label_count(store: Store, study_id: int) -> int:
    """Guesses with text on the study's items (changes whenever a label is added)."""
    with store.session() as session:
        return int(session.scalar(
            select(func.count()).select_from(Guess).join(Item, Item.id == Guess.item_id)
            .where(Item.study_id == study_id, Guess.text != "")
        ) or 0)


def label_sources(store: Store, study_id: int) -> dict[str, int]:
    """Labels (guesses with text) of the study per source (game, import, crowd...)."""
    with store.session() as session:
        rows = session.execute(
            select(Guess.source, func.count()).join(Item, Item.id == Guess.item_id)
            .where(Item.study_id == study_id, Guess.text != "").group_by(Guess.source)
        ).all()
    return {str(k): int(v) for k, v in rows}


def _image_ref(image: StudyImage) -> ImageRef:
    return ImageRef(id=image.id, key=image.key, true_class=image.true_class, predicted_class=image.predicted_class,
                    probability=float(image.probability), media_id=image.media_id)


def item_ref(item: Item, image: StudyImage) -> ItemRef:
    """The record of ``item`` of ``image``."""
    return ItemRef(id=item.id, image_id=image.id, image_key=image.key, image_media_id=image.media_id,
                   map_media_id=item.map_media_id, layer=item.layer, depth=item.depth, cluster=item.cluster,
                   weight=float(item.weight), predicted_class=image.predicted_class, true_class=image.true_class,
                   probability=float(image.probability), label_count=int(item.label_count or 0))


def study_images(store: Store, study_id: int) -> list[ImageRef]:
    """The study's images in insert order."""
    with store.session() as session:
        query = select(StudyImage).where(StudyImage.study_id == study_id).order_by(StudyImage.id)
        return [_image_ref(i) for i in session.scalars(query)]


def study_items(store: Store, study_id: int) -> list[ItemRef]:
    """The study's items, shallow layers first, then by image and cluster."""
    with store.session() as session:
        query = (select(Item, StudyImage).join(StudyImage, Item.image_id == StudyImage.id)
                 .where(Item.study_id == study_id).order_by(Item.depth, Item.image_id, Item.cluster))
        return [item_ref(item, image) for item, image in session.execute(query)]


def pictures(store: Store, media_ids: Sequence[int], chunk: int = 500) -> dict[int, bytes]:
    """PNG bytes of the given media rows."""
    return dict(media_pngs(store, media_ids, chunk))


@dataclass
class StudioGroupings:
    """The naming studio's concepts of a study: its item ids, every annotator who made a concept,
    their live concepts' counts and which live concept each of their items sits in."""

    item_ids: list[str]
    annotators: list[str]
    live_concepts: dict[str, int]
    members: list[tuple[str, int, str]]


def studio_groupings(store: Store, study_id: int) -> StudioGroupings:
    """The annotators of study ``study_id`` in the naming studio and their live concepts' members."""
    with store.session() as session:
        item_ids = [str(i) for i in session.scalars(select(Item.id).where(Item.study_id == study_id))]
        people = session.execute(
            select(Account.username, func.count(Concept.id))
            .join(Concept, Concept.annotator_id == Account.id)
            .where(Concept.study_id == study_id, Concept.removed.is_(False))
            .group_by(Account.username)
        ).all()
        everyone = set(session.scalars(
            select(Account.username).join(Concept, Concept.annotator_id == Account.id)
            .where(Concept.study_id == study_id)
        ))
        members = session.execute(
            select(Account.username, ConceptMember.item_id, Concept.name)
            .join(Concept, Concept.id == ConceptMember.concept_id)
            .join(Account, Account.id == Concept.annotator_id)
            .where(Concept.study_id == study_id, Concept.removed.is_(False))
        ).all()
    return StudioGroupings(item_ids=item_ids, annotators=sorted(everyone),
                           live_concepts={str(k): int(v) for k, v in people},
                           members=[(str(u), int(i), str(c)) for u, i, c in members])


# ---------------------------------------------------------------- the simulated crowd


def images_with_pictures(store: Store, study_id: int) -> list[tuple[ImageRef, bytes]]:
    """The study's images with their PNGs, in insert order."""
    with store.session() as session:
        query = (select(StudyImage, Media.png).join(Media, Media.id == StudyImage.media_id)
                 .where(StudyImage.study_id == study_id).order_by(StudyImage.id))
        return [(_image_ref(image), png) for image, png in session.execute(query)]


def items_with_maps(store: Store, study_id: int) -> list[tuple[ItemRef, bytes]]:
    """The study's items with their cluster maps' PNGs, by id."""
    with store.session() as session:
        query = (select(Item, StudyImage, Media.png).join(StudyImage, Item.image_id == StudyImage.id)
                 .join(Media, Media.id == Item.map_media_id).where(Item.study_id == study_id).order_by(Item.id))
        return [(item_ref(item, image), png) for item, image, png in session.execute(query)]


def store_source_labels(store: Store, name: str, source: str, rows: Sequence[Mapping[str, Any]], *,
                        replace: bool, params: Mapping[str, Any], params_key: str) -> None:
    """Store guesses ``rows`` (``Guess`` columns) of one ``source`` in study ``name`` in one
    transaction, with the items' ``label_count`` and ``params[params_key] = params``. Earlier labels
    of that source are an error unless ``replace`` (then they go first)."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["item_id"]] = counts.get(row["item_id"], 0) + 1
    items_table = Item.__table__
    bump = (
        update(items_table)
        .where(items_table.c.id == bindparam("b_id"))
        .values(label_count=items_table.c.label_count + bindparam("b_n"))
    )
    with store.session() as session:
        study = session.scalars(select(Study).where(Study.name == name)).first()
        if study is None:
            raise NetrevealError(f"study {name!r} was deleted while its labels were simulated")
        study_item_ids = select(Item.id).where(Item.study_id == study.id).scalar_subquery()
        old = session.execute(
            select(Guess.item_id, func.count())
            .where(Guess.item_id.in_(study_item_ids), Guess.source == source, Guess.text != "")
            .group_by(Guess.item_id)
        ).all()
        if old and not replace:
            total = sum(n for _, n in old)
            raise NetrevealError(f"study {name!r} already has {total} {source} labels (replace them with --replace)")
        if old:
            session.execute(delete(Guess).where(Guess.item_id.in_(study_item_ids), Guess.source == source)
                            .execution_options(synchronize_session=False))
            session.execute(bump, [{"b_id": i, "b_n": -n} for i, n in old])
        for start in range(0, len(rows), 1000):
            session.execute(Guess.__table__.insert(), list(rows[start:start + 1000]))
        if counts:
            session.execute(bump, [{"b_id": i, "b_n": n} for i, n in counts.items()])
        study_params = dict(study.params or {})
        study_params[params_key] = dict(params)
        study.params = study_params


__all__ = [
    "StudioGroupings",
    "images_with_pictures",
    "item_ref",
    "items_with_maps",
    "label_count",
    "label_sources",
    "pictures",
    "store_source_labels",
    "studio_groupings",
    "study_images",
    "study_items",
    "study_record",
]
