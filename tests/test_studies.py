# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Studies: creation from INV (checked against INV run directly and the reveal definition), one
transaction, export, label import, labels and the embedding cache — on SQLite and PostgreSQL."""

import csv
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import torch
from dbs import make_tiny_study, row_counts, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import func, select

from netreveal.errors import NetrevealError
from netreveal.fileio import MARKER
from netreveal.store import studies
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Game,
    Guess,
    Item,
    Media,
    Study,
    StudyImage,
    WebSession,
)
from netreveal.store.studies import study_labels
from netreveal.studies import builder as study_builder
from netreveal.studies import export as study_export
from netreveal.studies.embedding_cache import StoreEmbeddingCache
from netreveal.studies.export import export_study
from netreveal.studies.inv_study import create_study, create_study_from_inv
from netreveal.studies.label_import import import_labels
from netreveal.studies.pictures import png_tensor
from netreveal.studies.reveal import REVEAL_PERCENTS, reveal_frames

PX = 1.0 / 255


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The demo model, two parts-world images read from a folder, and INV run on them directly."""
    from netreveal.data.partsworld import PartsWorld
    from netreveal.inv import explain_inv
    from netreveal.model.adapter import load_model
    from netreveal.pipeline import predict, read_folder

    folder = tmp_path_factory.mktemp("pw")
    adapter = load_model("demo")
    PartsWorld(size=adapter.input_size, seed=0, split="test").write_folder(folder, 1)
    inputs = read_folder(adapter, folder, limit=2)
    reference = explain_inv(adapter.model, inputs.images, "last:9", batch_size=8, seed=0)
    probs = predict(adapter, inputs.images, 8)
    return adapter, inputs, reference, probs


def _low_map(adapter, image, layer, entry, cluster):
    """The cluster map at the layer's resolution, from its definition: sum_k w_k relu(A^k) / sum_k w_k,
    min-max normalised."""
    from netreveal.model.hooks import capture

    act = capture(adapter.model, image[None], [layer], backward=False).activations[layer][0].clamp_min(0)
    channels = torch.tensor(cluster.channels)
    w = entry.weights[channels]
    low = (w[:, None, None] * act[channels]).sum(0) / w.sum()
    return (low - low.min()) / (low.max() - low.min())


def test_create_study_stores_every_cluster_map_with_its_frames(store, world):
    adapter, inputs, reference, probs = world
    study_id = create_study(store, "pw-2", adapter, inputs, seed=0, batch_size=8)
    with store.session() as s:
        study = s.get(Study, study_id)
        assert study.name == "pw-2" and study.kind == "reveal"
        assert study.classes == adapter.class_names
        assert study.layers == reference.layers  # last:9 in forward order: shallow -> deep
        assert json.loads(study.model)["model"] == "demo"
        assert study.params["seed"] == 0 and study.params["inv"]["k_range"] == [3, 8]
        assert study.params["reveal"]["percents"] == list(REVEAL_PERCENTS)
        assert study.params["provenance"]["seed"] == 0 and "versions" in study.params["provenance"]
        images = s.scalars(select(StudyImage).where(StudyImage.study_id == study_id).order_by(StudyImage.id)).all()
        assert [i.key for i in images] == inputs.keys
        for i, row in enumerate(images):
            assert row.true_class == inputs.label_names[i]
            assert row.predicted_class == adapter.class_names[int(probs[i].argmax())]
            assert row.probability == pytest.approx(float(probs[i].max()), abs=1e-5)
            stored = png_tensor(s.get(Media, row.media_id).png)
            assert (stored - inputs.images[i]).abs().max() <= PX / 2 + 1e-6
        items = s.scalars(select(Item).where(Item.study_id == study_id).order_by(Item.id)).all()
        expected = {
            (inputs.keys[i], entry.name, j): (cluster, entry)
            for i, img in enumerate(reference.images)
            for entry in img.layers
            for j, cluster in enumerate(entry.clusters)
        }
        got = {(images[[r.id for r in images].index(item.image_id)].key, item.layer, item.cluster): item
               for item in items}
        assert set(got) == set(expected) and len(items) == len(expected) > 0
        for key, item in got.items():
            cluster, entry = expected[key]
            assert item.weight == pytest.approx(cluster.weight, abs=1e-4)
            assert item.channels == cluster.channels
            assert item.depth == study.layers.index(item.layer)
            assert item.label_count == 0
            stored_map = png_tensor(s.get(Media, item.map_media_id).png)
            assert (stored_map - cluster.map.float()).abs().max() <= PX / 2 + 2e-3  # 8 bits of a float16 map
            assert [(f.step, f.percent) for f in item.frames] == list(enumerate(REVEAL_PERCENTS, start=1))
        # frames against the definition, for one item per layer
        for layer in study.layers:
            key = next(k for k in sorted(got) if k[1] == layer)
            item, (cluster, entry) = got[key], expected[key]
            i = inputs.keys.index(key[0])
            low = _low_map(adapter, inputs.images[i], layer, entry, cluster)
            want = reveal_frames(inputs.images[i][None], low[None])[0]
            frames = torch.stack([png_tensor(s.get(Media, f.media_id).png) for f in item.frames])
            assert (frames - want).abs().max() <= PX / 2 + 1e-4, layer
            # the revealed pixels (shown as they are) cover at least p percent and grow step by step
            shown = (frames - inputs.images[i][None]).abs().amax(dim=1) <= PX
            n_low = low.numel()
            fractions = shown.flatten(1).float().mean(1)
            assert all(fractions[k] >= REVEAL_PERCENTS[k] / 100 - 1 / n_low for k in range(len(REVEAL_PERCENTS)))
            # and the low map redrawn at the input size is INV's cluster map
            up = torch.nn.functional.interpolate(low[None, None], size=cluster.map.shape, mode="bilinear",
                                                 align_corners=False)[0, 0]
            up = (up - up.min()) / (up.max() - up.min())
            assert (up - cluster.map.float()).abs().max() < 0.01


def test_create_from_inv_matches_create_study(store, world):
    adapter, inputs, reference, probs = world
    a = create_study(store, "direct", adapter, inputs, seed=0, batch_size=8)
    b = create_study_from_inv(store, "from-inv", adapter, inputs, reference, probs)

    def records(study_id):
        with store.session() as s:
            rows = s.execute(
                select(StudyImage.key, Item.layer, Item.depth, Item.cluster, Item.weight, Item.channels, Item.id)
                .join(StudyImage, Item.image_id == StudyImage.id).where(Item.study_id == study_id)
                .order_by(StudyImage.key, Item.depth, Item.cluster)
            ).all()
            frames = [[s.get(Media, f.media_id).png for f in s.get(Item, r[-1]).frames] for r in rows]
            return [r[:-1] for r in rows], frames

    ra, fa = records(a)
    rb, fb = records(b)
    assert ra == rb
    assert fa == fb
    with store.session() as s:
        assert s.get(Study, a).layers == s.get(Study, b).layers
    with pytest.raises(NetrevealError, match="probs must be"):
        create_study_from_inv(store, "short", adapter, inputs, reference, probs[:1])
    with pytest.raises(NetrevealError, match="INV result has 2 images but 1"):
        short = type(inputs)(inputs.keys[:1], inputs.images[:1], inputs.labels[:1], inputs.label_names[:1],
                             inputs.masks[:1])
        create_study_from_inv(store, "short", adapter, short, reference, probs[:1])


def test_failure_mid_way_leaves_nothing(store, world, monkeypatch):
    adapter, inputs, _, _ = world
    before = row_counts(store)
    original = study_builder.StudyBuilder._write_items

    def failing(self, session, *args):
        original(self, session, *args)  # everything but the commit
        raise RuntimeError("disk full")

    monkeypatch.setattr(study_builder.StudyBuilder, "_write_items", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        create_study(store, "doomed", adapter, inputs, batch_size=8)
    assert row_counts(store) == before
    monkeypatch.undo()

    import netreveal.inv

    calls = []
    real = netreveal.inv.explain_inv

    def second_chunk_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(netreveal.inv, "explain_inv", second_chunk_fails)
    with pytest.raises(RuntimeError, match="out of memory"):
        create_study(store, "doomed", adapter, inputs, batch_size=1)
    assert row_counts(store) == before
    assert not studies.study_exists(store, "doomed")


def test_existing_name_is_an_error_that_changes_nothing(store, world, monkeypatch):
    adapter, inputs, _, _ = world
    make_tiny_study(store, 2, name="taken")
    before = row_counts(store)
    import netreveal.inv

    monkeypatch.setattr(netreveal.inv, "explain_inv", lambda *a, **k: pytest.fail("INV ran"))
    with pytest.raises(NetrevealError, match="already exists"):
        create_study(store, "taken", adapter, inputs)
    with pytest.raises(NetrevealError, match="already exists"):
        make_tiny_study(store, 1, name="taken")
    assert row_counts(store) == before


@pytest.mark.parametrize("name", ["", "a b", "x" * 81, "é", "a/b", "../up", "semi;colon"])
def test_bad_study_names(name):
    with pytest.raises(NetrevealError, match="study name"):
        studies.validate_study_name(name)


def test_good_study_names():
    for name in ["A-b_9", "x" * 80, "2024-pets"]:
        assert studies.validate_study_name(name) == name


# -- export ---------------------------------------------------------------------------------------


def _activity(store, study_id):
    """Two players, an annotator, an idle account; games, guesses, a concept with members and events."""
    now = datetime.now(timezone.utc)
    with store.session() as s:
        people = [Account(username=n, password_hash=f"secret-hash-{n}", role=r)
                  for n, r in (("ann", "player"), ("bob", "player"), ("cy", "annotator"), ("idle", "player"))]
        s.add_all(people)
        s.flush()
        items = s.scalars(select(Item).where(Item.study_id == study_id).order_by(Item.id)).all()
        for player, item, text, cls in ((people[0], items[0], "stripes", "cat"), (people[1], items[1], "", "dog")):
            game = Game(player_id=player.id, item_id=item.id, step=2, outcome="win", points=10)
            s.add(game)
            s.flush()
            s.add(Guess(game_id=game.id, item_id=item.id, player_id=player.id, step=2, guessed_class=cls,
                        text=text, correct=cls == "cat", request_id=f"r-{player.id}"))
        concept = Concept(study_id=study_id, annotator_id=people[2].id, name="stripes")
        s.add(concept)
        s.flush()
        s.add_all([ConceptMember(concept_id=concept.id, item_id=items[k].id, annotator_id=people[2].id)
                   for k in (0, 2)])
        s.add(ConceptEvent(concept_id=concept.id, annotator_id=people[2].id, action="create",
                           detail={"items": [items[0].id, items[2].id]}))
        s.add(WebSession(token_hash="a" * 64, account_id=people[0].id, csrf_token="csrf-token-value",
                         expires_at=now + timedelta(hours=1)))
        return {p.username: p.id for p in people}


def test_export_writes_every_record(store, tmp_path):
    study_id = make_tiny_study(store, 3)
    other = make_tiny_study(store, 1, name="other")
    people = _activity(store, study_id)  # the other study has no activity: none of it may appear
    out = export_study(store, "tiny", tmp_path / "export")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{t}.csv" for t in studies.EXPORT_COLUMNS] + ["study.json", "media", MARKER])
    doc = json.loads((out / "study.json").read_text())
    assert doc["format"] == "netreveal-study-export" and doc["study"]["name"] == "tiny"
    with store.session() as s:
        n_items = s.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id))
        item_ids = set(s.scalars(select(Item.id).where(Item.study_id == study_id)))
        assert len(doc["images"]) == 3 and len(doc["items"]) == n_items
        assert {r["id"] for r in doc["items"]} == item_ids
        assert len(doc["reveal_frames"]) == n_items * len(REVEAL_PERCENTS)
        assert len(doc["games"]) == 2 and len(doc["guesses"]) == 2
        assert len(doc["concepts"]) == 1 and len(doc["concept_members"]) == 2 and len(doc["concept_events"]) == 1
        assert doc["concept_events"][0]["detail"]["items"] == sorted(doc["concept_events"][0]["detail"]["items"])
        # accounts that took part, without secrets
        assert sorted(a["username"] for a in doc["accounts"]) == ["ann", "bob", "cy"]
        assert set(doc["accounts"][0]) == {"id", "username", "role", "background", "created_at"}
        # CSV and JSON hold the same rows
        for table in studies.EXPORT_COLUMNS:
            with open(out / f"{table}.csv", newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            json_rows = [doc[table]] if table == "study" else doc[table]
            assert len(rows) == len(json_rows), table
            for row, jrow in zip(rows, json_rows):
                key, jkey = ("id" if "id" in row else next(iter(row))), ("id" if "id" in jrow else next(iter(jrow)))
                assert row[key] == str(jrow[jkey])
        # every picture, byte for byte
        media_ids = {r["media_id"] for r in doc["images"]} | {r["map_media_id"] for r in doc["items"]}
        media_ids |= {r["media_id"] for r in doc["reveal_frames"]}
        assert len(list((out / "media").iterdir())) == len(media_ids) == 3 + n_items * 7
        some = sorted(media_ids)[5]
        assert (out / "media" / f"{some}.png").read_bytes() == s.get(Media, some).png
        assert not set(s.scalars(select(Media.id).where(Media.study_id == other))) & media_ids
    blob = "".join(p.read_text(encoding="utf-8") for p in out.glob("*.csv")) + (out / "study.json").read_text()
    assert "secret-hash" not in blob and "password" not in blob and "csrf-token-value" not in blob
    assert people["idle"] not in {a["id"] for a in doc["accounts"]}


def test_export_defuses_formulas_and_imports_back_unchanged(store, tmp_path):
    make_tiny_study(store, 2)
    ids = _item_ids(store)
    texts = ["=HYPERLINK(\"http://x\")", "+1 legs", "-wing", "@cmd", "plain 'quote"]
    rows = [[ids[0], t, 2, "cat"] for t in texts]
    import_labels(store, "tiny", _write_csv(tmp_path / "in.csv", ["item_id", "text", "step", "guessed_class"], rows))
    out = export_study(store, "tiny", tmp_path / "export", media=False)
    with open(out / "guesses.csv", newline="", encoding="utf-8") as fh:
        exported = [r["text"] for r in csv.DictReader(fh)]
    assert exported == ["'=HYPERLINK(\"http://x\")", "'+1 legs", "'-wing", "'@cmd", "plain 'quote"]
    # the export is importable; into its own study it stores nothing twice
    assert import_labels(store, "tiny", out / "guesses.csv") == 0
    with store.session() as s:
        stored = s.scalars(select(Guess.text).order_by(Guess.id)).all()
    assert stored == texts


def test_export_is_atomic(store, tmp_path, monkeypatch):
    make_tiny_study(store, 2)
    tmp_path = tmp_path / "exports"  # a folder of its own (the SQLite file lives beside it)
    tmp_path.mkdir()
    target = tmp_path / "out"
    export_study(store, "tiny", target)
    first = (target / "study.json").read_text()
    # an earlier export is replaced, only with force
    with store.session() as s:
        item = s.scalars(select(Item)).first()
        s.add(Guess(item_id=item.id, step=1, correct=False, text="new"))
    with pytest.raises(NetrevealError, match="holds an earlier study export; pass --force"):
        export_study(store, "tiny", target)
    assert (target / "study.json").read_text() == first
    export_study(store, "tiny", target, force=True)
    assert (target / "study.json").read_text() != first
    # a failure leaves the earlier export as it was and no temporary folder
    before = (target / "study.json").read_text()
    real = study_export.write_table

    def broken(path, columns, rows):
        if path.stem == "items":
            raise OSError("no space left on device")
        real(path, columns, rows)

    monkeypatch.setattr(study_export, "write_table", broken)
    with pytest.raises(OSError):
        export_study(store, "tiny", target, force=True)
    with pytest.raises(OSError):
        export_study(store, "tiny", tmp_path / "fresh")
    monkeypatch.undo()
    assert (target / "study.json").read_text() == before
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a folder that is not an export is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(NetrevealError, match="not empty"):
        export_study(store, "tiny", tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(NetrevealError, match="unknown study"):
        export_study(store, "nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- labels ---------------------------------------------------------------------------------------


def _item_ids(store, study="tiny") -> list[int]:
    with store.session() as s:
        study_id = s.scalars(select(Study.id).where(Study.name == study)).one()
        return list(s.scalars(select(Item.id).where(Item.study_id == study_id).order_by(Item.id)))


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_import_labels_and_read_them_back(store, tmp_path):
    make_tiny_study(store, 3)  # image i predicted as cat, dog, fox
    ids = _item_ids(store)
    per_image = len(ids) // 3
    rows = [
        [ids[0], "stripes", 1, "cat", "ann", "en"],  # image 0 is a cat: correct
        [ids[0], "ears", 3, "dog", "ann", ""],  # wrong
        [ids[per_image], "wet nose", 6, "dog", "", "it"],  # image 1 is a dog: correct
        [ids[-1], "tail", 2, "", "zoe", "de"],  # no class guessed
    ]
    path = _write_csv(tmp_path / "labels.csv", ["item_id", "text", "step", "guessed_class", "player", "language"], rows)
    assert import_labels(store, "tiny", path) == 4
    with store.session() as s:
        guesses = s.scalars(select(Guess).order_by(Guess.id)).all()
        assert [(g.item_id, g.text, g.step, g.guessed_class, g.player_name, g.language, g.correct, g.source, g.game_id)
                for g in guesses] == [
            (ids[0], "stripes", 1, "cat", "ann", "en", True, "import", None),
            (ids[0], "ears", 3, "dog", "ann", "en", False, "import", None),
            (ids[per_image], "wet nose", 6, "dog", "", "it", True, "import", None),
            (ids[-1], "tail", 2, None, "zoe", "de", False, "import", None),
        ]
        counts = dict(s.execute(select(Item.id, Item.label_count)).all())
        assert counts[ids[0]] == 2 and counts[ids[per_image]] == 1 and counts[ids[-1]] == 1
        assert sum(counts.values()) == 4
    labels = study_labels(store, "tiny")
    assert [(r.item_id, r.text, r.step, r.correct, r.player, r.language) for r in labels] == [
        (str(ids[0]), "stripes", 1, True, "ann", "en"),
        (str(ids[0]), "ears", 3, False, "ann", "en"),
        (str(ids[per_image]), "wet nose", 6, True, "", "it"),
        (str(ids[-1]), "tail", 2, False, "zoe", "de"),
    ]
    with store.session() as s:
        item = s.get(Item, ids[0])
        image = s.get(StudyImage, item.image_id)
        assert (labels[0].image, labels[0].image_class, labels[0].layer, labels[0].cluster) == (
            image.key, "cat", item.layer, item.cluster)
        assert labels[0].weight == pytest.approx(item.weight)
    # round trip through an export
    out = export_study(store, "tiny", tmp_path / "export", media=False)
    with open(out / "guesses.csv", newline="", encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))
    assert [[int(r["item_id"]), r["text"], int(r["step"]), r["guessed_class"], r["player_name"], r["language"]]
            for r in exported] == [[r[0], r[1], r[2], r[3], r[4], r[5] or "en"] for r in rows]
    assert {r["source"] for r in exported} == {"import"}
    assert not (out / "media").exists()


def test_study_labels_from_the_game(store):
    study_id = make_tiny_study(store, 2)
    _activity(store, study_id)
    labels = study_labels(store, "tiny")
    # ann's guess has text; bob's has none and is not a label
    assert [(r.text, r.player, r.correct, r.step) for r in labels] == [("stripes", "ann", True, 2)]
    with pytest.raises(NetrevealError, match="unknown study"):
        study_labels(store, "nope")


BAD_ROWS = [
    ("unknown item", lambda ids, other: [999999, "x", 1, "cat"], "unknown item id 999999"),
    ("item of another study", lambda ids, other: [other[0], "x", 1, "cat"], "unknown item id"),
    ("step 0", lambda ids, other: [ids[0], "x", 0, "cat"], "step 0 is not in 1..6"),
    ("step 7", lambda ids, other: [ids[0], "x", 7, "cat"], "step 7"),
    ("step word", lambda ids, other: [ids[0], "x", "two", "cat"], "step 'two' is not a number"),
    ("item word", lambda ids, other: ["abc", "x", 1, "cat"], "item_id 'abc'"),
    ("long text", lambda ids, other: [ids[0], "y" * 201, 1, "cat"], "201 characters"),
    ("empty text", lambda ids, other: [ids[0], " ", 1, "cat"], "empty text"),
    ("unknown class", lambda ids, other: [ids[0], "x", 1, "zebra"], "'zebra' is not a class"),
]


@pytest.mark.parametrize("case", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_label_rows_store_nothing(store, tmp_path, case):
    _, make_row, message = case
    make_tiny_study(store, 2)
    make_tiny_study(store, 1, name="other")
    ids, other = _item_ids(store), _item_ids(store, "other")
    good = [[ids[0], "fine", 2, "cat"], [ids[1], "also fine", 3, "dog"]]
    path = _write_csv(tmp_path / "l.csv", ["item_id", "text", "step", "guessed_class"],
                      good + [make_row(ids, other)] + good)
    before = row_counts(store)
    with pytest.raises(NetrevealError, match=message) as info:
        import_labels(store, "tiny", path)
    assert "line 4" in str(info.value) and "\n" not in str(info.value)
    assert row_counts(store) == before
    with store.session() as s:
        assert set(s.scalars(select(Item.label_count))) == {0}


def test_bad_label_files(store, tmp_path):
    make_tiny_study(store, 1)
    ids = _item_ids(store)
    cases = {
        "missing.csv": None,
        "no_step.csv": "item_id,text,guessed_class\n1,x,cat\n",
        "empty.csv": "item_id,text,step,guessed_class\n",
        "latin1.csv": b"item_id,text,step,guessed_class\n" + f"{ids[0]},caf\xe9,1,cat\n".encode("latin-1"),
        "extra.csv": f"item_id,text,step,guessed_class\n{ids[0]},x,1,cat,surplus\n",
    }
    messages = {"missing.csv": "not found", "no_step.csv": "missing column", "empty.csv": "no label rows",
                "latin1.csv": "not UTF-8", "extra.csv": "more cells"}
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(NetrevealError, match=messages[name]):
            import_labels(store, "tiny", path)
    path = _write_csv(tmp_path / "ok.csv", ["item_id", "text", "step", "guessed_class"], [[ids[0], "x", 1, "cat"]])
    with pytest.raises(NetrevealError, match="unknown study"):
        import_labels(store, "nope", path)
    assert row_counts(store)["guesses"] == 0


# -- embedding cache ------------------------------------------------------------------------------


def test_embedding_cache(store):
    cache = StoreEmbeddingCache(store)
    rng = np.random.default_rng(0)
    vectors = {f"label {i}": rng.standard_normal(8).astype(np.float32) for i in range(7)}
    cache.put(vectors, "model-a")
    cache.put({"label 0": torch.ones(8)}, "model-b")
    got = cache.get(list(vectors) + ["unknown"], "model-a")
    assert set(got) == set(vectors)
    for text, vec in vectors.items():
        assert got[text].dtype == np.float32 and np.array_equal(got[text], vec)
    assert np.array_equal(cache.get(["label 0"], "model-b")["label 0"], np.ones(8, np.float32))
    # replacing a vector
    cache.put({"label 1": np.zeros(8)}, "model-a")
    assert np.array_equal(cache.get(["label 1"], "model-a")["label 1"], np.zeros(8, np.float32))
    # texts too long for the column are simply not cached
    cache.put({"z" * 300: np.ones(2)}, "model-a")
    assert cache.get(["z" * 300], "model-a") == {}
    # many texts (chunked queries)
    many = {f"t{i}": np.full(3, i, np.float32) for i in range(1200)}
    cache.put(many, "model-c")
    back = cache.get(list(many), "model-c")
    assert len(back) == 1200 and all(back[t][0] == v[0] for t, v in many.items())
    with pytest.raises(NetrevealError):
        cache.get(["x"], "")


def test_embedding_cache_fits_the_label_pipeline_protocol(store):
    embed = pytest.importorskip("netreveal.labels.embed")
    assert isinstance(StoreEmbeddingCache(store), embed.EmbeddingCache)
