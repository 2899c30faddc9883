"""Naming studio logic: gallery, concept operations with history, ownership, summaries."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import io

import pytest
from dbs import store, store_url  # noqa: F401  (fixtures: every test over SQLite and PostgreSQL)
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from netreveal.store import concepts as C
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Item,
    Media,
    Study,
    StudyImage,
)
from netreveal.studies import concept_summary as S

# image key -> (predicted class, [(layer, cluster, weight), ...])
IMAGES = {
    "a": ("cat", [("l1", 0, 40.0), ("l1", 1, 30.0), ("l2", 0, 60.0)]),
    "b": ("cat", [("l1", 0, 50.0), ("l2", 0, 20.0), ("l2", 1, 25.0)]),
    "c": ("dog", [("l1", 0, 70.0), ("l2", 0, 35.0)]),
    "d": ("dog", [("l2", 0, 10.0)]),
}


def png(kind: str, seed: int, size: int = 32) -> bytes:
    """A small real PNG: a colour image ("image") or a grey blob ("map") placed by ``seed``."""
    if kind == "image":
        colour = ((seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256)
        picture = Image.new("RGB", (size, size), colour)
    else:
        cx, cy = (seed * 7) % size, (seed * 13) % size
        picture = Image.new("L", (size, size))
        picture.putdata([max(0, 255 - 12 * (abs(x - cx) + abs(y - cy))) for y in range(size) for x in range(size)])
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def build_study(store, name="hand"):
    """A hand-built study (see IMAGES); returns ids: study, accounts, items[(key, layer, cluster)], images[key]."""
    with store.session() as s:
        study = Study(name=name, model="m", classes=["cat", "dog", "fish"], layers=["l1", "l2"])
        s.add(study)
        s.flush()
        ids = {"study": study.id, "items": {}, "images": {}}
        for key, (cls, items) in IMAGES.items():
            media = Media(study_id=study.id, png=png("image", len(ids["images"])))
            s.add(media)
            s.flush()
            image = StudyImage(study_id=study.id, key=key, predicted_class=cls, true_class=cls,
                               probability=0.9, media_id=media.id)
            s.add(image)
            s.flush()
            ids["images"][key] = image.id
            for layer, cluster, weight in items:
                m = Media(study_id=study.id, png=png("map", len(ids["items"])))
                s.add(m)
                s.flush()
                item = Item(study_id=study.id, image_id=image.id, layer=layer, depth=int(layer[1]) - 1,
                            cluster=cluster, weight=weight, channels=[1, 2], map_media_id=m.id)
                s.add(item)
                s.flush()
                ids["items"][(key, layer, cluster)] = item.id
        for username, role in (("ann", "annotator"), ("bob", "annotator"), ("boss", "admin")):
            if s.scalar(select(Account).where(Account.username == username)) is None:
                s.add(Account(username=username, password_hash="x", role=role))
        s.flush()
        for username in ("ann", "bob", "boss"):
            ids[username] = s.scalar(select(Account.id).where(Account.username == username))
    return ids


@pytest.fixture
def hand(store):
    return build_study(store)


def it(hand, key, layer="l1", cluster=0):
    return hand["items"][(key, layer, cluster)]


def events(store, concept_id):
    with store.session() as s:
        return [(e.action, e.detail) for e in s.scalars(
            select(ConceptEvent).where(ConceptEvent.concept_id == concept_id).order_by(ConceptEvent.id))]


def members(store, concept_id):
    with store.session() as s:
        return sorted(s.scalars(select(ConceptMember.item_id).where(ConceptMember.concept_id == concept_id)))


def count(store, model):
    with store.session() as s:
        return len(s.scalars(select(model)).all())


# ----------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("raw, clean", [
    ("  ears ", "ears"),
    ("pointy\t  ears", "pointy ears"),
    ("o'clock_1-x", "o'clock_1-x"),
    ("Schnäbel", "Schnäbel"),
    ("x" * 80, "x" * 80),
    ("wheel (front)", "wheel (front)"),
    ("rim/tyre, dark: 2.5 & more!", "rim/tyre, dark: 2.5 & more!"),
    ("fur?", "fur?"), ("wing’s edge – left + right", "wing’s edge – left + right"),
])
def test_clean_name_accepts(raw, clean):
    assert C.clean_name(raw) == clean


@pytest.mark.parametrize("raw, message", [
    ("", "empty"), ("   ", "empty"), ("x" * 81, "81 characters"), ("<b>ear</b>", "'<'"),
    ("ear;", "';'"), ("a\x00b", r"found U\+0000\)"), (None, "text"), ('say "ear"', "'\"'"), ("a\\b", "'\\\\\\\\'"),
])
def test_clean_name_rejects(raw, message):
    with pytest.raises(C.ConceptError, match=message) as err:
        C.clean_name(raw)
    assert err.value.status == 400


# -------------------------------------------------------------------------------------- create


def test_create_records_members_and_history(store, hand):
    ids = [it(hand, "a"), it(hand, "b"), it(hand, "c")]
    view = C.create_concept(store, hand["study"], hand["ann"], "  furry  ears ", ids + [ids[0]])
    assert view.name == "furry ears" and view.size == 3 and view.weight == 160.0
    assert [m.id for m in view.members] == [it(hand, "c"), it(hand, "b"), it(hand, "a")]  # by weight
    assert members(store, view.id) == sorted(ids)
    assert events(store, view.id) == [("create", {"items": ids, "moved_from": [], "before": None,
                                                  "after": {"name": "furry ears", "items": sorted(ids),
                                                            "removed": False}})]
    with store.session() as s:
        assert s.get(Concept, view.id).annotator_id == hand["ann"]


def test_create_rejects_bad_input_and_stores_nothing(store, hand):
    study, ann = hand["study"], hand["ann"]
    with pytest.raises(C.ConceptError, match="no maps selected"):
        C.create_concept(store, study, ann, "ears", [])
    with pytest.raises(C.ConceptError, match="'<'"):
        C.create_concept(store, study, ann, "<script>", [it(hand, "a")])
    with pytest.raises(C.ConceptNotFound, match="map 999999 not found"):
        C.create_concept(store, study, ann, "ears", [it(hand, "a"), 999999])
    other = build_study(store, "other")
    with pytest.raises(C.ConceptNotFound):  # an item of another study
        C.create_concept(store, study, ann, "ears", [other["items"][("a", "l1", 0)]])
    with pytest.raises(C.ConceptError, match="integer"):
        C.create_concept(store, study, ann, "ears", ["1"])
    assert count(store, Concept) == 0 and count(store, ConceptMember) == 0 and count(store, ConceptEvent) == 0


def test_names_are_unique_per_annotator_ignoring_case(store, hand):
    C.create_concept(store, hand["study"], hand["ann"], "Ears", [it(hand, "a")])
    with pytest.raises(C.ConceptConflict, match="already have a concept named 'Ears'") as err:
        C.create_concept(store, hand["study"], hand["ann"], "ears", [it(hand, "b")])
    assert err.value.status == 409
    other = C.create_concept(store, hand["study"], hand["bob"], "ears", [it(hand, "b")])  # bob's own namespace
    assert other.name == "ears"


# ------------------------------------------------------------------------ one concept per item


def test_an_item_is_in_one_concept_per_annotator_and_moves_are_explicit(store, hand):
    study, ann = hand["study"], hand["ann"]
    a, b, c = it(hand, "a"), it(hand, "b"), it(hand, "c")
    first = C.create_concept(store, study, ann, "ears", [a, b])
    with pytest.raises(C.ConceptConflict, match="1 of the selected maps already belong to your concept 'ears'"):
        C.create_concept(store, study, ann, "fur", [b, c])
    assert count(store, Concept) == 1 and members(store, first.id) == sorted([a, b])

    second = C.create_concept(store, study, ann, "fur", [b, c], move=True)
    assert members(store, second.id) == sorted([b, c]) and members(store, first.id) == [a]
    assert events(store, second.id)[0][1]["moved_from"] == [{"concept": first.id, "items": [b]}]
    action, detail = events(store, first.id)[-1]
    assert action == "drop" and detail["moved_to"] == second.id and detail["items"] == [b]
    assert detail["before"]["items"] == sorted([a, b]) and detail["after"]["items"] == [a]

    with pytest.raises(C.ConceptConflict):
        C.add_items(store, study, ann, first.id, [c])
    C.add_items(store, study, ann, first.id, [c], move=True)
    assert members(store, first.id) == sorted([a, c]) and members(store, second.id) == [b]

    # another annotator may put the same map in their own concept
    mine = C.create_concept(store, study, hand["bob"], "head", [a, b, c])
    assert mine.size == 3 and members(store, first.id) == sorted([a, c])


def test_the_database_enforces_one_concept_per_item(store, hand):
    view = C.create_concept(store, hand["study"], hand["ann"], "ears", [it(hand, "a")])
    with pytest.raises(IntegrityError), store.session() as s:
        other = Concept(study_id=hand["study"], annotator_id=hand["ann"], name="x")
        s.add(other)
        s.flush()
        s.add(ConceptMember(concept_id=other.id, item_id=it(hand, "a"), annotator_id=hand["ann"]))
    assert members(store, view.id) == [it(hand, "a")] and count(store, Concept) == 1


# ----------------------------------------------------------------------------- add and remove


def test_add_and_remove_items(store, hand):
    study, ann = hand["study"], hand["ann"]
    a, b, c = it(hand, "a"), it(hand, "b"), it(hand, "c")
    view = C.create_concept(store, study, ann, "ears", [a])
    view = C.add_items(store, study, ann, view.id, [a, b])
    assert view.size == 2
    assert events(store, view.id)[-1] == ("add", {"items": [b], "moved_from": [],
                                                  "before": {"name": "ears", "items": [a], "removed": False},
                                                  "after": {"name": "ears", "items": sorted([a, b]), "removed": False}})
    n = len(events(store, view.id))
    C.add_items(store, study, ann, view.id, [a, b])  # nothing new: no event
    assert len(events(store, view.id)) == n

    with pytest.raises(C.ConceptError, match=f"map {c} is not in concept 'ears'"):
        C.remove_items(store, study, ann, view.id, [a, c])
    assert members(store, view.id) == sorted([a, b])
    view = C.remove_items(store, study, ann, view.id, [a])
    assert [m.id for m in view.members] == [b]
    action, detail = events(store, view.id)[-1]
    assert action == "drop" and detail["items"] == [a] and detail["after"]["items"] == [b]
    page = C.gallery(store, study, ann, unassigned_only=True)
    assert a in [v.id for v in page.items] and b not in [v.id for v in page.items]
    view = C.remove_items(store, study, ann, view.id, [b])  # an empty concept stays until removed
    assert view.size == 0 and not view.removed


# ------------------------------------------------------------------------------------- rename


def test_rename(store, hand):
    study, ann = hand["study"], hand["ann"]
    view = C.create_concept(store, study, ann, "ears", [it(hand, "a")])
    C.create_concept(store, study, ann, "fur", [it(hand, "b")])
    renamed = C.rename_concept(store, study, ann, view.id, " pointy ears ")
    assert renamed.name == "pointy ears"
    assert events(store, view.id)[-1] == ("rename", {
        "before": {"name": "ears", "items": [it(hand, "a")], "removed": False},
        "after": {"name": "pointy ears", "items": [it(hand, "a")], "removed": False}})
    n = len(events(store, view.id))
    C.rename_concept(store, study, ann, view.id, "pointy ears")
    assert len(events(store, view.id)) == n
    C.rename_concept(store, study, ann, view.id, "Pointy Ears")  # a change of case is a rename
    assert C.get_concept(store, study, ann, view.id).name == "Pointy Ears"
    with pytest.raises(C.ConceptConflict):
        C.rename_concept(store, study, ann, view.id, "FUR")
    with pytest.raises(C.ConceptError, match="empty"):
        C.rename_concept(store, study, ann, view.id, "  ")
    assert C.get_concept(store, study, ann, view.id).name == "Pointy Ears"


# -------------------------------------------------------------------------------------- merge


def test_merge_unites_members_and_removes_the_others(store, hand):
    study, ann = hand["study"], hand["ann"]
    x = C.create_concept(store, study, ann, "ears", [it(hand, "a"), it(hand, "b")])
    y = C.create_concept(store, study, ann, "fur", [it(hand, "c")])
    z = C.create_concept(store, study, ann, "snout", [it(hand, "d", "l2"), it(hand, "a", "l2")])
    merged = C.merge_concepts(store, study, ann, [y.id, x.id, z.id], name="head")
    assert merged.id == y.id and merged.name == "head" and merged.size == 5
    assert members(store, y.id) == sorted([it(hand, "a"), it(hand, "b"), it(hand, "c"),
                                           it(hand, "d", "l2"), it(hand, "a", "l2")])
    assert members(store, x.id) == [] and members(store, z.id) == []
    with store.session() as s:
        assert s.get(Concept, x.id).removed and s.get(Concept, z.id).removed and not s.get(Concept, y.id).removed
    assert [c.id for c in C.list_concepts(store, study, ann)] == [y.id]
    action, detail = events(store, y.id)[-1]
    assert action == "merge" and detail["from"] == [x.id, z.id]
    assert detail["before"] == {"name": "fur", "items": [it(hand, "c")], "removed": False}
    assert detail["after"]["name"] == "head" and len(detail["after"]["items"]) == 5
    assert [s_["name"] for s_ in detail["sources"]] == ["ears", "snout"]
    action, detail = events(store, x.id)[-1]
    assert action == "merge" and detail["into"] == y.id
    assert detail["after"] == {"name": "ears", "items": [], "removed": True}
    with pytest.raises(C.ConceptNotFound):
        C.get_concept(store, study, ann, x.id)


def test_merge_edge_cases(store, hand):
    study, ann = hand["study"], hand["ann"]
    x = C.create_concept(store, study, ann, "ears", [it(hand, "a")])
    y = C.create_concept(store, study, ann, "fur", [it(hand, "b")])
    w = C.create_concept(store, study, ann, "tail", [it(hand, "c")])
    theirs = C.create_concept(store, study, hand["bob"], "bobs", [it(hand, "d", "l2")])
    with pytest.raises(C.ConceptError, match="at least two"):
        C.merge_concepts(store, study, ann, [x.id])
    with pytest.raises(C.ConceptError, match="at least two"):
        C.merge_concepts(store, study, ann, [x.id, x.id])
    with pytest.raises(C.ConceptNotFound, match=f"concept {theirs.id} not found"):
        C.merge_concepts(store, study, ann, [x.id, theirs.id])
    with pytest.raises(C.ConceptConflict):  # the name of a concept that is not merged
        C.merge_concepts(store, study, ann, [x.id, y.id], name="Tail")
    with pytest.raises(C.ConceptError, match="'<'"):
        C.merge_concepts(store, study, ann, [x.id, y.id], name="a<b")
    assert members(store, x.id) == [it(hand, "a")] and members(store, theirs.id) == [it(hand, "d", "l2")]
    assert len(C.list_concepts(store, study, ann)) == 3
    merged = C.merge_concepts(store, study, ann, [x.id, y.id], name="FUR")  # a merged concept's name
    assert merged.name == "FUR" and merged.size == 2
    kept = C.merge_concepts(store, study, ann, [merged.id, w.id])  # default name: the first concept's
    assert kept.name == "FUR" and kept.size == 3
    with pytest.raises(C.ConceptNotFound):  # a removed concept cannot be merged again
        C.merge_concepts(store, study, ann, [kept.id, y.id])


# -------------------------------------------------------------------------------------- split


def test_split_moves_selected_members_to_a_new_concept(store, hand):
    study, ann = hand["study"], hand["ann"]
    a, b, c = it(hand, "a"), it(hand, "b"), it(hand, "c")
    src = C.create_concept(store, study, ann, "ears", [a, b, c])
    new = C.split_concept(store, study, ann, src.id, [c, a], "big ears")
    assert new.name == "big ears" and sorted(m.id for m in new.members) == sorted([a, c])
    assert members(store, src.id) == [b] and members(store, new.id) == sorted([a, c])
    assert events(store, src.id)[-1] == ("split", {
        "items": sorted([a, c]), "into": new.id,
        "before": {"name": "ears", "items": sorted([a, b, c]), "removed": False},
        "after": {"name": "ears", "items": [b], "removed": False}})
    assert events(store, new.id) == [("create", {"items": sorted([a, c]), "split_from": src.id, "before": None,
                                                 "after": {"name": "big ears", "items": sorted([a, c]),
                                                           "removed": False}})]
    page = C.gallery(store, study, ann, image=hand["images"]["a"], layer="l1")
    assert {v.id: v.concept_name for v in page.items}[a] == "big ears"


def test_split_edge_cases(store, hand):
    study, ann = hand["study"], hand["ann"]
    a, b, c = it(hand, "a"), it(hand, "b"), it(hand, "c")
    src = C.create_concept(store, study, ann, "ears", [a, b])
    C.create_concept(store, study, ann, "fur", [c])
    with pytest.raises(C.ConceptError, match="at least one map"):
        C.split_concept(store, study, ann, src.id, [a, b], "all")
    with pytest.raises(C.ConceptError, match=f"map {c} is not in concept 'ears'"):
        C.split_concept(store, study, ann, src.id, [c], "x")
    with pytest.raises(C.ConceptError, match="no maps"):
        C.split_concept(store, study, ann, src.id, [], "x")
    with pytest.raises(C.ConceptConflict):
        C.split_concept(store, study, ann, src.id, [a], "Fur")
    with pytest.raises(C.ConceptNotFound):
        C.split_concept(store, study, hand["bob"], src.id, [a], "mine")
    assert members(store, src.id) == sorted([a, b]) and len(C.list_concepts(store, study, ann)) == 2


# ------------------------------------------------------------------------------------- remove


def test_remove_is_soft_and_frees_members(store, hand):
    study, ann = hand["study"], hand["ann"]
    a, b = it(hand, "a"), it(hand, "b")
    view = C.create_concept(store, study, ann, "ears", [a, b])
    gone = C.remove_concept(store, study, ann, view.id)
    assert gone.removed and gone.size == 0
    with store.session() as s:
        row = s.get(Concept, view.id)
        assert row is not None and row.removed and row.name == "ears"
    assert members(store, view.id) == []
    assert events(store, view.id)[-1] == ("remove", {
        "before": {"name": "ears", "items": sorted([a, b]), "removed": False},
        "after": {"name": "ears", "items": [], "removed": True}})
    assert [e.action for e in C.concept_history(store, study, ann, view.id)] == ["create", "remove"]
    for op in (lambda: C.get_concept(store, study, ann, view.id),
               lambda: C.rename_concept(store, study, ann, view.id, "x"),
               lambda: C.add_items(store, study, ann, view.id, [a]),
               lambda: C.remove_concept(store, study, ann, view.id)):
        with pytest.raises(C.ConceptNotFound):
            op()
    again = C.create_concept(store, study, ann, "ears", [a, b])  # name and maps are free again
    assert again.size == 2 and C.list_concepts(store, study, ann)[0].id == again.id


# ---------------------------------------------------------------------------------- ownership


def test_annotators_see_and_edit_only_their_own_concepts(store, hand):
    study, ann, bob = hand["study"], hand["ann"], hand["bob"]
    mine = C.create_concept(store, study, ann, "ears", [it(hand, "a"), it(hand, "b")])
    C.create_concept(store, study, bob, "bobs", [it(hand, "c")])
    before = events(store, mine.id)
    for op in (
        lambda: C.get_concept(store, study, bob, mine.id),
        lambda: C.concept_history(store, study, bob, mine.id),
        lambda: C.rename_concept(store, study, bob, mine.id, "stolen"),
        lambda: C.add_items(store, study, bob, mine.id, [it(hand, "d", "l2")]),
        lambda: C.remove_items(store, study, bob, mine.id, [it(hand, "a")]),
        lambda: C.split_concept(store, study, bob, mine.id, [it(hand, "a")], "part"),
        lambda: C.remove_concept(store, study, bob, mine.id),
        lambda: C.get_concept(store, hand["study"] + 1, ann, mine.id),  # wrong study
    ):
        with pytest.raises(C.ConceptNotFound) as err:
            op()
        assert err.value.status == 404
    assert events(store, mine.id) == before and members(store, mine.id) == sorted([it(hand, "a"), it(hand, "b")])
    assert [c.name for c in C.list_concepts(store, study, bob)] == ["bobs"]
    assert [c.name for c in C.list_concepts(store, study, ann)] == ["ears"]
    # the gallery shows each annotator their own assignments
    names = {v.id: v.concept_name for v in C.gallery(store, study, bob, per_page=200).items}
    assert names[it(hand, "a")] is None and names[it(hand, "c")] == "bobs"


def test_operations_inside_a_caller_session(store, hand):
    with store.session() as s:
        view = C.create_concept(s, hand["study"], hand["ann"], "ears", [it(hand, "a")])
        C.rename_concept(s, hand["study"], hand["ann"], view.id, "fur")
    assert C.get_concept(store, hand["study"], hand["ann"], view.id).name == "fur"
    with pytest.raises(RuntimeError), store.session() as s:  # the caller's transaction rolls back
        C.create_concept(s, hand["study"], hand["ann"], "tail", [it(hand, "b")])
        raise RuntimeError
    assert [c.name for c in C.list_concepts(store, hand["study"], hand["ann"])] == ["fur"]


# ------------------------------------------------------------------------------------ gallery


def test_gallery_sorts_filters_and_pages(store, hand):
    study, ann = hand["study"], hand["ann"]
    page = C.gallery(store, study, ann, per_page=200)
    weights = [v.weight for v in page.items]
    assert page.total == 9 and weights == sorted(weights, reverse=True) and weights[0] == 70.0
    first = page.items[0]
    assert (first.image_key, first.layer, first.predicted_class, first.cluster) == ("c", "l1", "dog", 0)
    paged = [C.gallery(store, study, ann, per_page=4, page=p) for p in (1, 2, 3)]
    assert [len(p.items) for p in paged] == [4, 4, 1] and all(p.pages == 3 and p.total == 9 for p in paged)
    assert [v.id for p in paged for v in p.items] == [v.id for v in page.items]
    assert C.gallery(store, study, ann, per_page=4, page=4).items == []

    assert [v.weight for v in C.gallery(store, study, ann, layer="l2").items] == [60.0, 35.0, 25.0, 20.0, 10.0]
    cats = C.gallery(store, study, ann, predicted_class="cat", layer="l1")
    assert [v.weight for v in cats.items] == [50.0, 40.0, 30.0]
    assert C.gallery(store, study, ann, image=hand["images"]["b"]).total == 3
    assert C.gallery(store, study, ann, min_weight=40).total == 4
    C.create_concept(store, study, ann, "ears", [it(hand, "c"), it(hand, "a", "l2")])
    C.create_concept(store, study, hand["bob"], "bobs", [it(hand, "b")])
    free = C.gallery(store, study, ann, unassigned_only=True, predicted_class="cat")
    assert free.total == 5 and it(hand, "a", "l2") not in [v.id for v in free.items]
    assert C.gallery(store, study, hand["bob"], unassigned_only=True).total == 8
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 201}):
        with pytest.raises(C.ConceptError):
            C.gallery(store, study, ann, **bad)


def test_gallery_filters(store, hand):
    f = C.gallery_filters(store, hand["study"])
    assert f["layers"] == [{"name": "l1", "depth": 0, "items": 4}, {"name": "l2", "depth": 1, "items": 5}]
    assert f["classes"] == [{"name": "cat", "items": 6}, {"name": "dog", "items": 3}]


# ---------------------------------------------------------------------------------- summaries


def _name_some(store, hand):
    study = hand["study"]
    C.create_concept(store, study, hand["ann"], "ears", [it(hand, "a"), it(hand, "b"), it(hand, "c")])
    C.create_concept(store, study, hand["ann"], "fur", [it(hand, "a", "l2"), it(hand, "b", "l2", 1),
                                                      it(hand, "b", "l2", 0)])
    C.create_concept(store, study, hand["bob"], "Ears", [it(hand, "a"), it(hand, "a", "l1", 1), it(hand, "d", "l2")])
    C.create_concept(store, study, hand["bob"], "snout", [it(hand, "c", "l2")])
    gone = C.create_concept(store, study, hand["bob"], "gone", [it(hand, "b")])
    C.remove_concept(store, study, hand["bob"], gone.id)


def test_class_summary_for_one_annotator(store, hand):
    _name_some(store, hand)
    cat, dog = S.class_summary(store, hand["study"], hand["ann"], examples=1)
    assert (cat.class_name, cat.images, cat.items, cat.named_items, cat.total_weight) == ("cat", 2, 6, 5, 225.0)
    assert [s.name for s in cat.concepts] == ["fur", "ears"]  # same image count, fur has more weight
    fur, ears = cat.concepts
    assert (fur.images, fur.items, fur.weight, fur.image_fraction) == (2, 3, 105.0, 1.0)
    assert fur.mean_weight == 52.5 and fur.share == pytest.approx(105 / 225)
    assert (ears.images, ears.items, ears.weight) == (2, 2, 90.0) and ears.annotators == ["ann"]
    assert [e.id for e in fur.examples] == [it(hand, "a", "l2")]  # the strongest image's strongest map
    assert (dog.images, dog.items, dog.named_items, dog.total_weight) == (2, 3, 1, 115.0)
    assert [(s.name, s.images, s.weight, s.image_fraction) for s in dog.concepts] == [("ears", 1, 70.0, 0.5)]


def test_class_summary_across_annotators(store, hand):
    _name_some(store, hand)
    cat, dog = S.class_summary(store, hand["study"])
    ears = next(s for s in cat.concepts if s.name.casefold() == "ears")
    # ann's ears {a/l1/0, b/l1/0} + bob's Ears {a/l1/0, a/l1/1}: each map counted once
    assert (ears.items, ears.weight, ears.images) == (3, 120.0, 2)
    assert ears.annotators == ["ann", "bob"] and len(ears.concept_ids) == 2
    assert cat.named_items == 6  # the removed concept counts for nothing
    assert "gone" not in [s.name for c in (cat, dog) for s in c.concepts]
    dog_names = {s.name.casefold(): (s.images, s.weight) for s in dog.concepts}
    assert dog_names == {"ears": (2, 80.0), "snout": (1, 35.0)}
    assert [e.image_key for e in ears.examples] == ["b", "a"]  # one example per image, strongest first


def test_explain_image(store, hand):
    _name_some(store, hand)
    exp = S.explain_image(store, hand["study"], hand["images"]["a"], hand["ann"])
    assert exp.total_weight == 130.0 and exp.predicted_class == "cat"
    assert [(s.name, s.weight) for s in exp.concepts] == [("fur", 60.0), ("ears", 40.0)]
    assert exp.concepts[0].share == pytest.approx(60 / 130)
    assert exp.unnamed_weight == 30.0 and exp.unnamed_share == pytest.approx(30 / 130)
    both = S.explain_image(store, hand["study"], hand["images"]["a"], top=1)
    assert [(s.name.casefold(), s.weight, s.items) for s in both.concepts] == [("ears", 70.0, 2)]
    assert both.unnamed_weight == 0.0
    with pytest.raises(C.ConceptNotFound):
        S.explain_image(store, hand["study"] + 1, hand["images"]["a"])


def test_opposite_merges_at_the_same_time_lose_no_map(store, hand):
    """A merge waits for a concurrent merge of the same concepts and then finds its source gone."""
    import threading

    study, ann = hand["study"], hand["ann"]
    x = C.create_concept(store, study, ann, "ears", [it(hand, "a"), it(hand, "b")])
    y = C.create_concept(store, study, ann, "fur", [it(hand, "c")])
    outcome = {}

    def other_tab():
        try:
            with store.session() as s:
                outcome["view"] = C.merge_concepts(s, study, ann, [y.id, x.id])
        except C.ConceptError as exc:
            outcome["error"] = exc

    with store.session() as s:
        C.merge_concepts(s, study, ann, [x.id, y.id])  # holds its locks until this block commits
        thread = threading.Thread(target=other_tab)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the first merge
    thread.join(30)
    assert isinstance(outcome.get("error"), C.ConceptNotFound)
    assert [(c.id, c.size) for c in C.list_concepts(store, study, ann)] == [(x.id, 3)]
    assert members(store, x.id) == sorted([it(hand, "a"), it(hand, "b"), it(hand, "c")])
