"""The naming studio's reads: its records (items, concepts, gallery pages, summaries), its errors,
the gallery and the concept views. Edits are in :mod:`netreveal.store.concepts`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.label_queries import item_ref
from netreveal.store.models import Account, Concept, ConceptMember, Item, Study, StudyImage
from netreveal.store.records import ImageRef, ItemRef

NAME_MAX = 80
NAME_PUNCTUATION = " -'_().,:/&+!?’–"  # letters and digits, and these: "wheel (front)", "rim/tyre"
PER_PAGE_DEFAULT = 48
PER_PAGE_MAX = 200
SELECTION_MAX = 5000  # maps touched by one operation


class ConceptError(NetrevealError):
    """A request the studio cannot carry out (bad name, bad selection); HTTP 400."""

    status = 400


class ConceptNotFound(ConceptError):
    """A concept or map that does not exist for this annotator and study; HTTP 404."""

    status = 404


class ConceptConflict(ConceptError):
    """A request that clashes with existing concepts (a taken name, a map in another concept); HTTP 409."""

    status = 409


@dataclass
class ItemView(ItemRef):
    """One significant map as the studio shows it: the item, its image and (per annotator) its concept."""

    concept_id: int | None = None
    concept_name: str | None = None


@dataclass
class GalleryPage:
    """A page of the gallery: ``items`` sorted by weight (highest first), ``total`` over all pages."""

    items: list[ItemView]
    total: int
    page: int
    per_page: int
    pages: int


@dataclass
class ConceptView:
    """An annotator's concept with its members (highest weight first)."""

    id: int
    name: str
    removed: bool
    created_at: datetime
    updated_at: datetime
    size: int
    weight: float
    members: list[ItemView]


@dataclass
class ConceptEventView:
    """One entry of a concept's history."""

    id: int
    concept_id: int
    action: str
    detail: dict[str, Any]
    at: datetime


@dataclass
class ConceptShare:
    """A named concept's part in the predictions of one class (or in one image's explanation).

    ``images``: images of the class with a map in the concept; ``image_fraction``: their share of
    the class's images; ``items`` / ``weight``: the distinct maps and their summed INV weights
    (percent); ``mean_weight``: weight per image that has the concept; ``share``: weight over the
    summed weight of all maps in scope. Concepts of several annotators with the same name (ignoring
    case) are counted together, each map once.
    """

    name: str
    concept_ids: list[int]
    annotators: list[str]
    images: int
    image_fraction: float
    items: int
    weight: float
    mean_weight: float
    share: float
    examples: list[ItemView] = field(default_factory=list)


@dataclass
class ClassSummary:
    """The concepts behind one predicted class, most frequent first."""

    class_name: str
    images: int
    items: int
    named_items: int
    total_weight: float
    concepts: list[ConceptShare]


@dataclass
class ImageExplanation:
    """One classification as a few named concepts with weights, and the weight left unnamed."""

    image_id: int
    image_key: str
    image_media_id: int
    predicted_class: str
    true_class: str | None
    probability: float
    total_weight: float
    unnamed_weight: float
    unnamed_share: float
    concepts: list[ConceptShare]


# ---------------------------------------------------------------------------------------- helpers


@contextmanager
def _session(db: Store | Session) -> Iterator[Session]:
    if isinstance(db, Store):
        with db.session() as session:
            yield session
    else:
        yield db


def _id(value: Any, what: str) -> int:
    if value is None:
        raise ConceptError(f"no {what} given")
    raw = getattr(value, "id", value)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConceptError(f"{what} id must be an integer, got {raw!r}")
    return raw



def _item_views(session: Session, where: Any) -> list[ItemView]:
    query = (select(Item, StudyImage).join(StudyImage, Item.image_id == StudyImage.id).where(where)
             .order_by(Item.weight.desc(), Item.id))
    return [_view_item(item, image) for item, image in session.execute(query)]


def _view_item(
    item: Item, image: StudyImage, concept_id: int | None = None, concept_name: str | None = None
) -> ItemView:
    return ItemView(**vars(item_ref(item, image)), concept_id=concept_id, concept_name=concept_name)


def _concept_view(session: Session, concept: Concept) -> ConceptView:
    session.flush()
    members = _item_views(
        session,
        Item.id.in_(select(ConceptMember.item_id).where(ConceptMember.concept_id == concept.id)),
    )
    for member in members:
        member.concept_id, member.concept_name = concept.id, concept.name
    return ConceptView(
        id=concept.id, name=concept.name, removed=bool(concept.removed), created_at=concept.created_at,
        updated_at=concept.updated_at, size=len(members), weight=sum(m.weight for m in members), members=members,
    )


# ------------------------------------------------------------------------------------ the gallery


def gallery(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int,
    *,
    layer: str | None = None,
    predicted_class: str | None = None,
    image: int | None = None,
    unassigned_only: bool = False,
    min_weight: float = 0.0,
    page: int = 1,
    per_page: int = PER_PAGE_DEFAULT,
) -> GalleryPage:
    """The study's significant maps across its images, highest weight first, one page at a time.

    Filters: ``layer`` (name), ``predicted_class``, ``image`` (image id), ``unassigned_only`` (maps
    not yet in one of this annotator's concepts) and ``min_weight`` (percent). Each map carries the
    annotator's concept for it, if any. ``page`` counts from 1; ``per_page`` is 1..200.
    """
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ConceptError(f"page must be a positive integer, got {page!r}")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= PER_PAGE_MAX:
        raise ConceptError(f"per_page must be between 1 and {PER_PAGE_MAX}, got {per_page!r}")
    with _session(db) as session:
        member = aliased(ConceptMember)
        conditions = [Item.study_id == sid]
        if layer:
            conditions.append(Item.layer == layer)
        if predicted_class:
            conditions.append(StudyImage.predicted_class == predicted_class)
        if image is not None:
            conditions.append(Item.image_id == _id(image, "image"))
        if min_weight:
            conditions.append(Item.weight >= float(min_weight))
        if unassigned_only:
            conditions.append(member.item_id.is_(None))
        base = (
            select(Item, StudyImage, Concept.id, Concept.name)
            .join(StudyImage, Item.image_id == StudyImage.id)
            .outerjoin(member, (member.item_id == Item.id) & (member.annotator_id == aid))
            .outerjoin(Concept, Concept.id == member.concept_id)
            .where(*conditions)
        )
        total = session.scalar(select(func.count()).select_from(base.with_only_columns(Item.id).subquery()))
        rows = session.execute(base.order_by(Item.weight.desc(), Item.id).offset((page - 1) * per_page).limit(per_page))
        items = [_view_item(item, img, cid, cname) for item, img, cid, cname in rows]
    return GalleryPage(items=items, total=int(total or 0), page=page, per_page=per_page,
                       pages=max(1, -(-int(total or 0) // per_page)))


def gallery_filters(db: Store | Session, study: Study | int) -> dict[str, list[dict[str, Any]]]:
    """The values the gallery can be filtered by, with map counts: ``layers`` (shallow to deep) and ``classes``."""
    sid = _id(study, "study")
    with _session(db) as session:
        layers = session.execute(
            select(Item.layer, Item.depth, func.count()).where(Item.study_id == sid)
            .group_by(Item.layer, Item.depth).order_by(Item.depth, Item.layer)
        ).all()
        classes = session.execute(
            select(StudyImage.predicted_class, func.count(Item.id))
            .join(Item, Item.image_id == StudyImage.id)
            .where(StudyImage.study_id == sid)
            .group_by(StudyImage.predicted_class).order_by(StudyImage.predicted_class)
        ).all()
    return {
        "layers": [{"name": name, "depth": depth, "items": count} for name, depth, count in layers],
        "classes": [{"name": name, "items": count} for name, count in classes],
    }



# ------------------------------------------------------------------------------ summaries


def _named_members(session: Session, study_id: int, annotator_id: int | None) -> list[tuple[int, int, str, str]]:
    """(item id, concept id, concept name, annotator name) for the live concepts in scope."""
    query = (
        select(ConceptMember.item_id, Concept.id, Concept.name, Account.username)
        .join(Concept, Concept.id == ConceptMember.concept_id)
        .join(Account, Account.id == Concept.annotator_id)
        .where(Concept.study_id == study_id, Concept.removed.is_(False))
    )
    if annotator_id is not None:
        query = query.where(Concept.annotator_id == annotator_id)
    return [tuple(row) for row in session.execute(query)]


@dataclass
class StudyConceptMaps:
    """A study's class order, its items (as the studio shows them), each image's predicted class and
    the live concepts' members in scope (item id, concept id, concept name, annotator name)."""

    classes: list[str]
    items: list[ItemView]
    image_classes: dict[int, str]
    named: list[tuple[int, int, str, str]]


def study_concept_maps(db: Store | Session, study_id: int, annotator_id: int | None) -> StudyConceptMaps:
    """What the class summaries of study ``study_id`` are made from (one annotator's concepts, or everyone's)."""
    with _session(db) as session:
        study = session.get(Study, study_id)
        if study is None:
            raise ConceptNotFound(f"study {study_id} not found")
        image_classes = dict(session.execute(
            select(StudyImage.id, StudyImage.predicted_class).where(StudyImage.study_id == study_id)
        ).all())
        return StudyConceptMaps(classes=list(study.classes or []),
                                items=_item_views(session, Item.study_id == study_id),
                                image_classes=image_classes, named=_named_members(session, study_id, annotator_id))


def image_concept_maps(db: Store | Session, study_id: int, image_id: int,
                       annotator_id: int | None) -> tuple[ImageRef, list[ItemView], list[tuple[int, int, str, str]]]:
    """Image ``image_id`` of the study, its items and the live concepts' members in scope."""
    with _session(db) as session:
        row = session.get(StudyImage, image_id)
        if row is None or row.study_id != study_id:
            raise ConceptNotFound(f"image {image_id} not found in this study")
        image = ImageRef(id=row.id, key=row.key, true_class=row.true_class, predicted_class=row.predicted_class,
                         probability=float(row.probability), media_id=row.media_id)
        return image, _item_views(session, Item.image_id == image_id), _named_members(session, study_id, annotator_id)
