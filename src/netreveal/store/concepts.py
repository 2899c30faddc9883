"""The naming studio's logic: a gallery of significant maps and each annotator's named concepts.

An annotator looks at the significant cluster maps (the study's items) of many images at once and
groups them by hand into named visual concepts; they can add and drop maps, rename, merge, split
and remove concepts. Every change is one transaction and leaves a :class:`ConceptEvent` with the
concept's state before and after. Each annotator sees and edits only their own concepts (another
annotator's concept id is "not found"), and an item is in at most one concept per annotator:
taking a map that already sits in another of your concepts needs ``move=True``.

From the concepts, :func:`class_summary` gives the typical reasons behind each predicted class and
:func:`explain_image` gives one classification as a few named concepts with weights.

Every function takes either a :class:`~netreveal.store.db.Store` (it opens and commits its own
session) or an open ``Session`` (the caller commits), plus the study and the annotator as a model
object or an id. Bad input raises :class:`ConceptError` (a :class:`NetrevealError`) whose
``status`` is the HTTP code the web app answers with.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Item,
    Study,
    StudyImage,
    utcnow,
)

NAME_MAX = 80
NAME_PUNCTUATION = " -'_"
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
class ItemView:
    """One significant map as the studio shows it: the item, its image and (per annotator) its concept."""

    id: int
    image_id: int
    image_key: str
    image_media_id: int
    map_media_id: int
    layer: str
    depth: int
    cluster: int
    weight: float
    predicted_class: str
    true_class: str | None
    probability: float
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


def clean_name(name: Any) -> str:
    """A concept name trimmed, with inner white space runs as one space; raises :class:`ConceptError` when bad.

    Names hold 1 to 80 letters, digits, spaces, hyphens, apostrophes and underscores.
    """
    if not isinstance(name, str):
        raise ConceptError("concept name must be text")
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise ConceptError("concept name is empty")
    if len(text) > NAME_MAX:
        raise ConceptError(f"concept name is {len(text)} characters long; at most {NAME_MAX} are allowed")
    for char in text:
        if not (unicodedata.category(char).startswith("L") or char.isdecimal() or char in NAME_PUNCTUATION):
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise ConceptError(
                f"concept name may hold only letters, digits, spaces, - ' and _ (found {shown})"
            )
    return text


def _item_ids(values: Any, *, required: bool = True) -> list[int]:
    if values is None:
        values = []
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConceptError("maps must be given as a list of item ids")
    ids: list[int] = []
    seen: set[int] = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConceptError(f"item id must be an integer, got {value!r}")
        if value not in seen:
            seen.add(value)
            ids.append(value)
    if required and not ids:
        raise ConceptError("no maps selected")
    if len(ids) > SELECTION_MAX:
        raise ConceptError(f"{len(ids)} maps selected; at most {SELECTION_MAX} per change")
    return ids


def _check_items(session: Session, study_id: int, ids: list[int]) -> None:
    found = set(session.scalars(select(Item.id).where(Item.study_id == study_id, Item.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ConceptNotFound(f"map{'s' if len(missing) > 1 else ''} {shown} not found in this study")


def _own(
    session: Session, study_id: int, annotator_id: int, concept_id: Any, *, removed: bool = False, lock: bool = False
) -> Concept:
    """The annotator's concept ``concept_id`` (``lock``: its row locked for this transaction), else not found."""
    cid = _id(concept_id, "concept")
    if lock:
        if session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks: a first write takes the database's write lock (waiting for
            # any other writer to commit), so what is read next is current until this commits
            session.execute(update(Concept).where(Concept.id == cid).values(updated_at=Concept.updated_at),
                            execution_options={"synchronize_session": False})
        concept = session.get(Concept, cid, with_for_update=True, populate_existing=True)
    else:
        concept = session.get(Concept, cid)
    if (concept is None or concept.study_id != study_id or concept.annotator_id != annotator_id
            or (concept.removed and not removed)):
        raise ConceptNotFound(f"concept {cid} not found")
    return concept


def _members(session: Session, concept_id: int) -> list[int]:
    return sorted(session.scalars(select(ConceptMember.item_id).where(ConceptMember.concept_id == concept_id)))


def _owners(session: Session, annotator_id: int, ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(ConceptMember.item_id, ConceptMember.concept_id).where(
            ConceptMember.annotator_id == annotator_id, ConceptMember.item_id.in_(ids)
        )
    )
    return {item: concept for item, concept in rows}


def _snapshot(session: Session, concept: Concept) -> dict[str, Any]:
    return {"name": concept.name, "items": _members(session, concept.id), "removed": bool(concept.removed)}


def _event(session: Session, concept: Concept, action: str, detail: dict[str, Any]) -> None:
    session.add(ConceptEvent(concept_id=concept.id, annotator_id=concept.annotator_id, action=action, detail=detail))


def _check_name_free(
    session: Session, study_id: int, annotator_id: int, name: str, *, ignore: Iterable[int] = ()
) -> None:
    skip = set(ignore)
    rows = session.execute(
        select(Concept.id, Concept.name).where(
            Concept.study_id == study_id, Concept.annotator_id == annotator_id, Concept.removed.is_(False)
        )
    )
    key = name.casefold()
    for cid, other in rows:
        if cid not in skip and other.casefold() == key:
            raise ConceptConflict(f"you already have a concept named {other!r}; merge into it or pick another name")


def _conflict_message(session: Session, taken: dict[int, int]) -> str:
    names = sorted(set(session.scalars(select(Concept.name).where(Concept.id.in_(set(taken.values()))))))
    n = len(taken)
    return (f"{n} of the selected maps already belong to your concept{'s' if len(names) > 1 else ''} "
            f"{', '.join(repr(x) for x in names)}; move them explicitly")


def _take(session: Session, target: Concept, ids: list[int], owners: dict[int, int]) -> list[dict[str, Any]]:
    """Put ``ids`` into ``target``, moving those owned by other concepts; returns the moves made."""
    moves: list[dict[str, Any]] = []
    by_source: dict[int, list[int]] = defaultdict(list)
    for item in ids:
        source = owners.get(item)
        if source is not None and source != target.id:
            by_source[source].append(item)
    now = utcnow()
    for source_id, items in sorted(by_source.items()):
        source = session.get(Concept, source_id)
        before = _snapshot(session, source)
        session.execute(
            update(ConceptMember)
            .where(ConceptMember.concept_id == source_id, ConceptMember.item_id.in_(items))
            .values(concept_id=target.id)
        )
        source.updated_at = now
        _event(session, source, "drop", {"items": sorted(items), "moved_to": target.id,
                                          "before": before, "after": _snapshot(session, source)})
        moves.append({"concept": source_id, "items": sorted(items)})
    for item in ids:
        if item not in owners:
            session.add(ConceptMember(concept_id=target.id, item_id=item, annotator_id=target.annotator_id))
    target.updated_at = now
    session.flush()
    return moves


def _item_views(session: Session, where: Any) -> list[ItemView]:
    query = (select(Item, StudyImage).join(StudyImage, Item.image_id == StudyImage.id).where(where)
             .order_by(Item.weight.desc(), Item.id))
    return [_view_item(item, image) for item, image in session.execute(query)]


def _view_item(
    item: Item, image: StudyImage, concept_id: int | None = None, concept_name: str | None = None
) -> ItemView:
    return ItemView(
        id=item.id, image_id=image.id, image_key=image.key, image_media_id=image.media_id,
        map_media_id=item.map_media_id, layer=item.layer, depth=item.depth, cluster=item.cluster,
        weight=float(item.weight), predicted_class=image.predicted_class, true_class=image.true_class,
        probability=float(image.probability), concept_id=concept_id, concept_name=concept_name,
    )


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


# ----------------------------------------------------------------------------------- the concepts


def list_concepts(db: Store | Session, study: Study | int, annotator: Account | int) -> list[ConceptView]:
    """The annotator's live concepts in the study, most recently changed first."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    with _session(db) as session:
        concepts = session.scalars(
            select(Concept).where(Concept.study_id == sid, Concept.annotator_id == aid, Concept.removed.is_(False))
            .order_by(Concept.updated_at.desc(), Concept.id.desc())
        ).all()
        return [_concept_view(session, concept) for concept in concepts]


def get_concept(db: Store | Session, study: Study | int, annotator: Account | int, concept_id: int) -> ConceptView:
    """One of the annotator's live concepts; :class:`ConceptNotFound` for anyone else's."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    with _session(db) as session:
        return _concept_view(session, _own(session, sid, aid, concept_id))


def concept_history(
    db: Store | Session, study: Study | int, annotator: Account | int, concept_id: int
) -> list[ConceptEventView]:
    """The events of one of the annotator's concepts (removed ones too), oldest first."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    with _session(db) as session:
        concept = _own(session, sid, aid, concept_id, removed=True)
        events = session.scalars(
            select(ConceptEvent).where(ConceptEvent.concept_id == concept.id).order_by(ConceptEvent.id)
        )
        return [ConceptEventView(e.id, e.concept_id, e.action, dict(e.detail or {}), e.at) for e in events]


def create_concept(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int,
    name: str,
    item_ids: Iterable[int],
    *,
    move: bool = False,
) -> ConceptView:
    """A new concept named ``name`` holding the selected maps.

    Maps already in another of the annotator's concepts raise :class:`ConceptConflict` unless
    ``move`` is true, in which case they leave that concept (recorded there as a ``drop``).
    """
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    name = clean_name(name)
    ids = _item_ids(item_ids)
    with _session(db) as session:
        _check_items(session, sid, ids)
        _check_name_free(session, sid, aid, name)
        owners = _owners(session, aid, ids)
        if owners and not move:
            raise ConceptConflict(_conflict_message(session, owners))
        now = utcnow()
        concept = Concept(study_id=sid, annotator_id=aid, name=name, removed=False, created_at=now, updated_at=now)
        session.add(concept)
        session.flush()
        moves = _take(session, concept, ids, owners)
        _event(session, concept, "create", {"items": ids, "moved_from": moves, "before": None,
                                            "after": _snapshot(session, concept)})
        return _concept_view(session, concept)


def add_items(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int,
    concept_id: int,
    item_ids: Iterable[int],
    *,
    move: bool = False,
) -> ConceptView:
    """Add maps to a concept; maps already in it are left alone, maps in another concept need ``move``."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    ids = _item_ids(item_ids)
    with _session(db) as session:
        concept = _own(session, sid, aid, concept_id, lock=True)
        _check_items(session, sid, ids)
        owners = _owners(session, aid, ids)
        elsewhere = {item: owner for item, owner in owners.items() if owner != concept.id}
        if elsewhere and not move:
            raise ConceptConflict(_conflict_message(session, elsewhere))
        new = [item for item in ids if owners.get(item) != concept.id]
        if new:
            before = _snapshot(session, concept)
            moves = _take(session, concept, new, elsewhere)
            _event(session, concept, "add", {"items": new, "moved_from": moves, "before": before,
                                             "after": _snapshot(session, concept)})
        return _concept_view(session, concept)


def remove_items(
    db: Store | Session, study: Study | int, annotator: Account | int, concept_id: int, item_ids: Iterable[int]
) -> ConceptView:
    """Take maps out of a concept (they become unassigned); every map must be in the concept."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    ids = _item_ids(item_ids)
    with _session(db) as session:
        concept = _own(session, sid, aid, concept_id, lock=True)
        before = _snapshot(session, concept)
        outside = [item for item in ids if item not in set(before["items"])]
        if outside:
            raise ConceptError(f"map {outside[0]} is not in concept {concept.name!r}")
        for member in session.scalars(
            select(ConceptMember).where(ConceptMember.concept_id == concept.id, ConceptMember.item_id.in_(ids))
        ):
            session.delete(member)
        concept.updated_at = utcnow()
        session.flush()
        _event(session, concept, "drop", {"items": ids, "before": before, "after": _snapshot(session, concept)})
        return _concept_view(session, concept)


def rename_concept(
    db: Store | Session, study: Study | int, annotator: Account | int, concept_id: int, name: str
) -> ConceptView:
    """Give a concept a new name (unchanged names record nothing)."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    name = clean_name(name)
    with _session(db) as session:
        concept = _own(session, sid, aid, concept_id, lock=True)
        if name != concept.name:
            _check_name_free(session, sid, aid, name, ignore=[concept.id])
            before = _snapshot(session, concept)
            concept.name = name
            concept.updated_at = utcnow()
            _event(session, concept, "rename", {"before": before, "after": _snapshot(session, concept)})
        return _concept_view(session, concept)


def merge_concepts(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int,
    concept_ids: Iterable[int],
    name: str | None = None,
) -> ConceptView:
    """Unite two or more of the annotator's concepts into the first one given.

    The others are removed (``removed=True``) with their maps moved over; ``name`` (default: the
    first concept's name) may reuse the name of any merged concept.
    """
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    if isinstance(concept_ids, (str, bytes)) or not isinstance(concept_ids, Iterable):
        raise ConceptError("concepts to merge must be given as a list of ids")
    ids = list(dict.fromkeys(_id(c, "concept") for c in concept_ids))
    if len(ids) < 2:
        raise ConceptError("merging needs at least two different concepts")
    new_name = clean_name(name) if name is not None else None
    with _session(db) as session:
        locked = {cid: _own(session, sid, aid, cid, lock=True) for cid in sorted(ids)}  # one lock order
        concepts = [locked[cid] for cid in ids]
        target, sources = concepts[0], concepts[1:]
        if new_name is not None:
            _check_name_free(session, sid, aid, new_name, ignore=ids)
        before = _snapshot(session, target)
        source_states = []
        now = utcnow()
        for source in sources:
            state = _snapshot(session, source)
            source_states.append({"id": source.id, **state})
            session.execute(
                update(ConceptMember).where(ConceptMember.concept_id == source.id).values(concept_id=target.id)
            )
            source.removed = True
            source.updated_at = now
        if new_name is not None:
            target.name = new_name
        target.updated_at = now
        session.flush()
        for source, state in zip(sources, source_states):
            before_source = {k: state[k] for k in ("name", "items", "removed")}
            _event(session, source, "merge", {"into": target.id, "before": before_source,
                                              "after": _snapshot(session, source)})
        _event(session, target, "merge", {"from": [s.id for s in sources], "sources": source_states,
                                          "before": before, "after": _snapshot(session, target)})
        return _concept_view(session, target)


def split_concept(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int,
    concept_id: int,
    item_ids: Iterable[int],
    name: str,
) -> ConceptView:
    """Move some of a concept's maps to a new concept named ``name``; returns the new concept.

    The maps must all be in the concept and at least one must stay behind.
    """
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    ids = _item_ids(item_ids)
    name = clean_name(name)
    with _session(db) as session:
        source = _own(session, sid, aid, concept_id, lock=True)
        before = _snapshot(session, source)
        members = set(before["items"])
        outside = [item for item in ids if item not in members]
        if outside:
            raise ConceptError(f"map {outside[0]} is not in concept {source.name!r}")
        if len(ids) == len(members):
            raise ConceptError(f"a split must leave at least one map in {source.name!r} (rename it instead)")
        _check_name_free(session, sid, aid, name)
        now = utcnow()
        new = Concept(study_id=sid, annotator_id=aid, name=name, removed=False, created_at=now, updated_at=now)
        session.add(new)
        session.flush()
        session.execute(
            update(ConceptMember)
            .where(ConceptMember.concept_id == source.id, ConceptMember.item_id.in_(ids))
            .values(concept_id=new.id)
        )
        source.updated_at = now
        session.flush()
        _event(session, source, "split", {"items": sorted(ids), "into": new.id, "before": before,
                                          "after": _snapshot(session, source)})
        _event(session, new, "create", {"items": sorted(ids), "split_from": source.id, "before": None,
                                        "after": _snapshot(session, new)})
        return _concept_view(session, new)


def remove_concept(db: Store | Session, study: Study | int, annotator: Account | int, concept_id: int) -> ConceptView:
    """Remove a concept (kept in the database as ``removed`` with its history); its maps become free."""
    sid, aid = _id(study, "study"), _id(annotator, "annotator")
    with _session(db) as session:
        concept = _own(session, sid, aid, concept_id, lock=True)
        before = _snapshot(session, concept)
        for member in session.scalars(select(ConceptMember).where(ConceptMember.concept_id == concept.id)):
            session.delete(member)
        concept.removed = True
        concept.updated_at = utcnow()
        session.flush()
        _event(session, concept, "remove", {"before": before, "after": _snapshot(session, concept)})
        return _concept_view(session, concept)


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


class _Groups:
    """Concepts grouped by case-folded name: their ids, annotators, spellings and member maps."""

    def __init__(self, rows: list[tuple[int, int, str, str]]):
        self.items: dict[str, set[int]] = defaultdict(set)
        self.concepts: dict[str, set[int]] = defaultdict(set)
        self.annotators: dict[str, set[str]] = defaultdict(set)
        spellings: dict[str, Counter] = defaultdict(Counter)
        seen: set[int] = set()
        for item, cid, name, username in rows:
            key = name.casefold()
            self.items[key].add(item)
            self.concepts[key].add(cid)
            self.annotators[key].add(username)
            if cid not in seen:
                seen.add(cid)
                spellings[key][name] += 1
        self.names = {key: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, c in spellings.items()}
        self.named: set[int] = set().union(*self.items.values()) if self.items else set()


def _share(groups: _Groups, key: str, items: list[ItemView], n_images: int, total_weight: float,
           examples: int) -> ConceptShare:
    weight = sum(v.weight for v in items)
    images = len({v.image_id for v in items})
    best: dict[int, ItemView] = {}
    for view in sorted(items, key=lambda v: (-v.weight, v.id)):
        best.setdefault(view.image_id, view)
    return ConceptShare(
        name=groups.names[key], concept_ids=sorted(groups.concepts[key]), annotators=sorted(groups.annotators[key]),
        images=images, image_fraction=images / n_images if n_images else 0.0, items=len(items), weight=weight,
        mean_weight=weight / images if images else 0.0, share=weight / total_weight if total_weight else 0.0,
        examples=list(best.values())[:examples],
    )


def class_summary(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int | None = None,
    *,
    examples: int = 4,
) -> list[ClassSummary]:
    """Per predicted class, the named concepts behind its predictions (across annotators, or for one).

    For each class (in the study's class order, classes without images left out): its images and
    maps, how many maps have a concept, and per concept the number of the class's images with a map
    in it, the summed weight of those maps, and up to ``examples`` example maps (the strongest map
    of each of the strongest images). Concepts are sorted by images, then weight.
    """
    sid = _id(study, "study")
    aid = None if annotator is None else _id(annotator, "annotator")
    with _session(db) as session:
        study_row = session.get(Study, sid)
        if study_row is None:
            raise ConceptNotFound(f"study {sid} not found")
        order = {name: i for i, name in enumerate(study_row.classes or [])}
        views = _item_views(session, Item.study_id == sid)
        image_classes = dict(session.execute(
            select(StudyImage.id, StudyImage.predicted_class).where(StudyImage.study_id == sid)
        ).all())
        groups = _Groups(_named_members(session, sid, aid))
    by_class: dict[str, list[ItemView]] = defaultdict(list)
    for view in views:
        by_class[view.predicted_class].append(view)
    images_per_class = Counter(image_classes.values())
    summaries = []
    for class_name in sorted(images_per_class, key=lambda c: (order.get(c, len(order)), c)):
        items = by_class.get(class_name, [])
        total = sum(v.weight for v in items)
        n_images = images_per_class[class_name]
        shares = []
        for key, members in groups.items.items():
            chosen = [v for v in items if v.id in members]
            if chosen:
                shares.append(_share(groups, key, chosen, n_images, total, examples))
        shares.sort(key=lambda s: (-s.images, -s.weight, s.name.casefold()))
        summaries.append(ClassSummary(
            class_name=class_name, images=n_images, items=len(items),
            named_items=sum(1 for v in items if v.id in groups.named), total_weight=total, concepts=shares,
        ))
    return summaries


def explain_image(
    db: Store | Session,
    study: Study | int,
    image: int,
    annotator: Account | int | None = None,
    *,
    top: int = 5,
) -> ImageExplanation:
    """One image's classification as its ``top`` named concepts (by summed map weight) and the unnamed rest.

    Each concept's ``weight`` is the summed INV weight (percent, over all layers) of the image's
    maps in it, ``share`` that weight over all the image's maps; ``examples`` are those maps.
    """
    sid, iid = _id(study, "study"), _id(image, "image")
    aid = None if annotator is None else _id(annotator, "annotator")
    with _session(db) as session:
        row = session.get(StudyImage, iid)
        if row is None or row.study_id != sid:
            raise ConceptNotFound(f"image {iid} not found in this study")
        views = _item_views(session, Item.image_id == iid)
        groups = _Groups(_named_members(session, sid, aid))
        total = sum(v.weight for v in views)
        shares = []
        for key, members in groups.items.items():
            chosen = [v for v in views if v.id in members]
            if chosen:
                share = _share(groups, key, chosen, 1, total, examples=0)
                share.examples = chosen
                shares.append(share)
        shares.sort(key=lambda s: (-s.weight, s.name.casefold()))
        unnamed = sum(v.weight for v in views if v.id not in groups.named)
        return ImageExplanation(
            image_id=row.id, image_key=row.key, image_media_id=row.media_id, predicted_class=row.predicted_class,
            true_class=row.true_class, probability=float(row.probability), total_weight=total,
            unnamed_weight=unnamed, unnamed_share=unnamed / total if total else 0.0, concepts=shares[:max(0, top)],
        )
