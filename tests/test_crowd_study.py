"""The simulated crowd labels a stored parts-world study: guesses with the right counts and
sources, drawn from the images' real ground truth; other studies are refused, nothing stored."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import functools
import math
import re

import pytest
import torch
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import func, select

from netreveal.cli import main
from netreveal.data.crowd import BACKGROUND_WORDS, CrowdConfig, seen_part, simulate_crowd
from netreveal.data.partsworld import PART_TYPES
from netreveal.errors import NetrevealError
from netreveal.labels.crowd_study import label_study_with_crowd, parse_image_key, study_crowd_items
from netreveal.store.models import Guess, Item, Study, StudyImage
from netreveal.store.studies import list_studies, study_labels


@functools.lru_cache(maxsize=1)
def demo_inv():
    """Two held-out parts-world images as ``netreveal demo`` names them, INV on the demo model's
    last two conv layers (explaining the predicted class): (adapter, inputs, INV result, probs)."""
    from netreveal import pipeline
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.inv import explain_inv
    from netreveal.model.adapter import load_model

    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, 2)
    result = explain_inv(adapter.model, inputs.images, "last:2", seed=0)
    probs = pipeline.predict(adapter, inputs.images, 8)
    return adapter, inputs, result, probs


def make_demo_study(store, name: str = "demo") -> int:
    """The demo-like study in ``store`` (as ``netreveal demo --method inv`` stores it)."""
    from netreveal.studies.inv_study import create_study_from_inv

    adapter, inputs, result, probs = demo_inv()
    return create_study_from_inv(store, name, adapter, inputs, result, probs)


def guesses(store, **where):
    with store.session() as s:
        query = select(Guess).order_by(Guess.id)
        for key, value in where.items():
            query = query.where(getattr(Guess, key) == value)
        return list(s.scalars(query))


def label_counts(store) -> dict[int, int]:
    with store.session() as s:
        return dict(s.execute(select(Item.id, Item.label_count)).all())


def test_image_keys_name_samples():
    assert parse_image_key("cart-000").__dict__ == {"class_name": "cart", "split": "test", "index": 0}
    assert parse_image_key("plane-test_0000009").index == 9
    assert parse_image_key("glider/val_0000002").split == "val"
    assert parse_image_key("IMG_0001") is None and parse_image_key("cart-x") is None


def test_items_carry_the_images_ground_truth(store):
    make_demo_study(store)
    _, inputs, result, _ = demo_inv()
    items, info = study_crowd_items(store, "demo")
    assert len(items) == sum(len(layer.clusters) for img in result.images for layer in img.layers)
    by_key = dict(zip(inputs.keys, range(len(inputs.keys))))
    for item in items:
        i = by_key[item.image]
        # the part masks are the sample's own, rendered again
        assert torch.equal(item.part_masks, inputs.part_masks[i])
        # the map is the stored cluster map (8-bit PNG of the INV map)
        original = result.images[i].layer(item.layer).clusters[item.cluster].map.float()
        assert (item.map - original).abs().max() <= 1 / 255 + 1e-6
        # the part a player sees is the part the INV map itself overlaps most
        assert seen_part(item) == seen_part(item.__class__(**{**item.__dict__, "map": original}))
        assert info[item.item_id][1] == item.image_class


def test_crowd_labels_are_stored_with_counts_sources_and_players(store):
    make_demo_study(store)
    config = CrowdConfig.noisy(0.2, seed=3)
    n = label_study_with_crowd(store, "demo", config)
    stored = guesses(store)
    assert n == len(stored) > 0
    assert {g.source for g in stored} == {"crowd"}
    assert all(g.game_id is None and g.player_id is None and g.request_id is None for g in stored)
    assert all(re.fullmatch(r"crowd-\d\d", g.player_name) for g in stored)
    # label_count of every item = its guesses; 5..8 labels each (the default crowd)
    per_item: dict[int, int] = {}
    for g in stored:
        per_item[g.item_id] = per_item.get(g.item_id, 0) + 1
    counts = label_counts(store)
    assert counts == {i: per_item.get(i, 0) for i in counts}
    assert all(5 <= c <= 8 for c in counts.values())
    assert list_studies(store)[0]["labels"] == n
    # the texts, steps and outcomes are the simulated crowd's on the study's items
    items, _ = study_crowd_items(store, "demo")
    expected = simulate_crowd(items, config)
    assert [(str(g.item_id), g.text, g.step, g.correct) for g in stored] == [
        (r.item_id, r.text, r.step, r.correct) for r in expected
    ]
    # a correct guess names the predicted class, a wrong one another class of the study
    with store.session() as s:
        predicted = dict(s.execute(select(Item.id, StudyImage.predicted_class)
                                   .join(StudyImage, StudyImage.id == Item.image_id)).all())
        classes = s.scalar(select(Study.classes))
    for g in stored:
        if g.correct:
            assert g.guessed_class == predicted[g.item_id]
        else:
            assert g.guessed_class != predicted[g.item_id] and g.guessed_class in classes
    assert 0 < sum(not g.correct for g in stored) < len(stored)
    # the settings are kept with the study
    with store.session() as s:
        crowd = s.scalar(select(Study.params))["crowd"]
    assert crowd["seed"] == 3 and crowd["labels"] == n and crowd["wrong_rate"] == 0.2
    records = study_labels(store, "demo")
    assert len(records) == n and {r.player for r in records} == {g.player_name for g in stored}


def test_a_clean_crowd_names_the_part_each_map_shows(store):
    from netreveal.data.partsworld import PartsWorld

    make_demo_study(store)
    label_study_with_crowd(store, "demo", CrowdConfig(filler_rate=0.0, seed=1))
    _, inputs, result, _ = demo_inv()
    world = PartsWorld(size=64, seed=0, split="test")
    parts = [world.sample(i).parts for i in range(len(inputs.keys))]
    with store.session() as s:
        where = {i.id: (k, i.layer, i.cluster) for i, k in
                 s.execute(select(Item, StudyImage.key).join(StudyImage, StudyImage.id == Item.image_id))}
    named = 0
    for g in guesses(store):
        key, layer, cluster = where[g.item_id]
        i = inputs.keys.index(key)
        # the original INV map's top 5 % and the sample's part masks (the crowd's definition)
        cmap = result.images[i].layer(layer).clusters[cluster].map.float().flatten()
        region = cmap.topk(math.ceil(0.05 * cmap.numel())).indices
        overlap = inputs.part_masks[i].flatten(1)[:, region].sum(1).tolist()
        text = g.text.lower()
        if max(overlap, default=0) == 0:
            assert text in BACKGROUND_WORDS
        else:
            truth = [p for p, o in zip(parts[i], overlap) if o == max(overlap)]
            assert any(text in PART_TYPES[p].names for p in truth), (text, truth)
            named += 1
    assert named > 0


def test_second_run_needs_replace_and_replace_keeps_counts_right(store):
    make_demo_study(store)
    first = label_study_with_crowd(store, "demo", CrowdConfig(seed=0))
    before = (guesses(store), label_counts(store))
    with pytest.raises(NetrevealError, match="already has .* crowd labels") as err:
        label_study_with_crowd(store, "demo", CrowdConfig(seed=1))
    assert "\n" not in str(err.value)
    assert [g.id for g in guesses(store)] == [g.id for g in before[0]] and label_counts(store) == before[1]
    # a label from a person is kept when the crowd's labels are replaced
    item_id = next(iter(before[1]))
    with store.session() as s:
        s.add(Guess(item_id=item_id, player_name="pat", step=2, guessed_class="cart", text="round thing",
                    correct=True, source="import"))
        s.execute(Item.__table__.update().where(Item.id == item_id).values(label_count=Item.label_count + 1))
    second = label_study_with_crowd(store, "demo", CrowdConfig(seed=1), replace=True)
    crowd = guesses(store, source="crowd")
    assert len(crowd) == second and len(guesses(store, source="import")) == 1
    assert not {g.id for g in crowd} & {g.id for g in before[0]}
    per_item: dict[int, int] = {}
    for g in guesses(store):
        per_item[g.item_id] = per_item.get(g.item_id, 0) + 1
    counts = label_counts(store)
    assert counts == {i: per_item.get(i, 0) for i in counts}
    assert first > 0


def test_studies_of_other_images_are_refused_and_nothing_is_stored(store):
    make_tiny_study(store, name="pets")  # keys cat-000, ...: not parts-world classes
    make_tiny_study(store, name="fake", classes=("cart", "plane"), size=64)  # right names, other pixels
    for name, message in (("pets", "not a parts-world sample"), ("fake", "differs from parts-world sample"),
                          ("nope", "unknown study")):
        with pytest.raises(NetrevealError, match=message) as err:
            label_study_with_crowd(store, name, CrowdConfig())
        assert "\n" not in str(err.value)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 0
        assert s.scalar(select(func.sum(Item.label_count))) == 0


def test_cli_crowd(store, store_url, capsys):
    make_demo_study(store)
    db = ["--database-url", store_url]
    assert main(["labels", "crowd", "--study", "demo", "--noise", "0.2", "--seed", "0", *db]) == 0
    out = capsys.readouterr().out
    n = len(guesses(store))
    assert f"stored {n} crowd labels in study 'demo'" in out
    for argv, message in (
        (["labels", "crowd", "--study", "demo", *db], "already has"),
        (["labels", "crowd", "--study", "demo", "--noise", "1.5", *db], "--noise must be in [0, 1]"),
        (["labels", "crowd", "--study", "missing", *db], "unknown study 'missing'"),
    ):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("netreveal: error: ") and message in lines[0]
    assert len(guesses(store)) == n
    assert main(["labels", "crowd", "--study", "demo", "--seed", "5", "--replace", *db]) == 0
    assert "stored" in capsys.readouterr().out


def test_a_study_created_from_a_parts_world_folder_is_labelled(store, tmp_path):
    from netreveal.data.partsworld import PartsWorld
    from netreveal.model.adapter import load_model
    from netreveal.pipeline import read_folder
    from netreveal.studies.inv_study import create_study

    PartsWorld(size=64, seed=0, split="val").write_folder(tmp_path / "pw", 1, split="val", start_index=16)
    adapter = load_model("demo")
    inputs = read_folder(adapter, tmp_path / "pw", limit=2)
    assert all(parse_image_key(k).split == "val" for k in inputs.keys)  # e.g. badge/val_0000023.png
    create_study(store, "folder", adapter, inputs, layers="last:1")
    items, _ = study_crowd_items(store, "folder")
    for item in items:
        assert torch.equal(item.part_masks, inputs.part_masks[inputs.keys.index(item.image)])
    n = label_study_with_crowd(store, "folder", CrowdConfig(seed=2))
    assert n == len(guesses(store, source="crowd")) == sum(label_counts(store).values()) > 0
