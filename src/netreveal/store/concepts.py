"""The naming studio's logic: a gallery of significant maps and each annotator's named concepts.

An annotator looks at the significant cluster maps (the study's items) of many images at once and
groups them by hand into named visual concepts; they can add and drop maps, rename, merge, split
and remove concepts. Every change is one transaction and leaves a :class:`ConceptEvent` with the
concept's state before and after. Each annotator sees and edits only their own concepts (another
annotator's concept id is "not found"), and an item is in at most one concept per annotator:
taking a map that already sits in another of your concepts needs ``move=True``.

From the concepts, :func:`netreveal.studies.concept_summary.class_summary` gives the typical
reasons behind each predicted class and :func:`~netreveal.studies.concept_summary.explain_image`
gives one classification as a few named concepts with weights.

Every function takes either a :class:`~netreveal.store.db.Store` (it opens and commits its own
session) or an open ``Session`` (the caller commits), plus the study and the annotator as a model
object or an id. Bad input raises :class:`ConceptError` (a :class:`NetrevealError`) whose
``status`` is the HTTP code the web app answers with.
"""


from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from netreveal.store.concept_views import (
    NAME_MAX,
    NAME_PUNCTUATION,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    SELECTION_MAX,
    ConceptConflict,
    ConceptError,
    ConceptEventView,
    ConceptNotFound,
    ConceptView,
    GalleryPage,
    ItemView,
    _concept_view,
    _id,
    _session,
    gallery,
    gallery_filters,
)
from netreveal.store.db import Store
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Item,
    Study,
    utcnow,
)


def clean_name(name: Any) -> str:
    """A concept name trimmed, with inner white space runs as one space; raises :class:`ConceptError` when bad.

    Names hold 1 to 80 letters, digits, spaces and the common punctuation of :data:`NAME_PUNCTUATION`
    (hyphens, apostrophes, underscores, parentheses, periods, commas, colons, slashes, ``& + ! ?``
    and typographic ’ and –); markup characters such as ``< > ; "`` and backslashes are refused.
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
                f"concept name may hold only letters, digits, spaces and {' '.join(NAME_PUNCTUATION.strip())} "
                f"(found {shown})"
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


__all__ = [
    "NAME_MAX",
    "PER_PAGE_DEFAULT",
    "PER_PAGE_MAX",
    "SELECTION_MAX",
    "ConceptConflict",
    "ConceptError",
    "ConceptEventView",
    "ConceptNotFound",
    "ConceptView",
    "GalleryPage",
    "ItemView",
    "add_items",
    "clean_name",
    "concept_history",
    "create_concept",
    "gallery",
    "gallery_filters",
    "get_concept",
    "list_concepts",
    "merge_concepts",
    "remove_concept",
    "remove_items",
    "rename_concept",
    "split_concept",
]
