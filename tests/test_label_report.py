"""A study's label analysis: numbers equal the label pipeline's on the same records (and hand-computed
scores), studio agreement from the store, TCAV rows by their definition, and the escaped HTML report."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import json
import zlib

import pytest
import torch
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import select

from netreveal.cli import main
from netreveal.errors import NetrevealError
from netreveal.labels.aggregate import explain_labels
from netreveal.labels.analysis import analyse_study
from netreveal.labels.embed import Embedder
from netreveal.labels.report import write_label_report
from netreveal.store import concepts as C
from netreveal.store.models import Account, Embedding, Guess, Item, StudyImage
from netreveal.store.studies import study_labels
from netreveal.studies.embedding_cache import StoreEmbeddingCache

CLASSES = ("cart", "<i>plane</i>", "fox")  # a class name with markup: must come out escaped
PLANE = "<i>plane</i>-001"
# (image key, layer, cluster) -> labels as (text, reveal step, correct guess)
LABELS = {
    ("cart-000", "block1", 0): [("wheel", 1, True), ("wheel", 2, True), ("wheels", 3, False)],
    ("cart-000", "block1", 1): [("star", 1, True)],
    ("cart-000", "block3", 0): [("a wing", 2, True), ("Wing!", 2, True)],
    ("cart-000", "block3", 1): [("wing", 4, True)],
    (PLANE, "block1", 0): [("wing", 1, True)],
    (PLANE, "block2", 0): [("zigzag", 5, False)],
    (PLANE, "block2", 1): [("star", 4, True)],
}


class HashModel:
    """Sentence embeddings for tests: each word a fixed random direction (seeded by the word),
    a text the sum of its words' directions; different words are nearly orthogonal."""

    dim = 256

    def encode(self, texts, **kwargs):
        rows = []
        for text in texts:
            vec = torch.zeros(self.dim)
            for word in text.split() or [""]:
                gen = torch.Generator().manual_seed(zlib.crc32(word.encode("utf-8")))
                vec += torch.randn(self.dim, generator=gen)
            rows.append(vec)
        out = torch.stack(rows)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)


def item_ids(store) -> dict[tuple[str, str, int], int]:
    with store.session() as s:
        rows = s.execute(select(Item.id, StudyImage.key, Item.layer, Item.cluster)
                         .join(StudyImage, StudyImage.id == Item.image_id)).all()
    return {(key, layer, cluster): i for i, key, layer, cluster in rows}


def add_labels(store, labels=LABELS) -> None:
    ids = item_ids(store)
    with store.session() as s:
        for where, rows in labels.items():
            for text, step, correct in rows:
                s.add(Guess(item_id=ids[where], player_name=f"p{step}", step=step, text=text, correct=correct,
                            guessed_class=None, source="import"))
            s.execute(Item.__table__.update().where(Item.id == ids[where])
                      .values(label_count=Item.label_count + len(rows)))


@pytest.fixture
def hand(store):
    make_tiny_study(store, name="hand", classes=CLASSES)
    add_labels(store)
    return store


def test_analysis_numbers_equal_the_label_pipeline(hand):
    analysis = analyse_study(hand, "hand", model=HashModel())
    reference = explain_labels(study_labels(hand, "hand"), ["block1", "block2", "block3"],
                               Embedder(HashModel()), class_names=list(CLASSES))
    assert analysis.explanations.to_dict() == reference.to_dict()
    assert analysis.n_labels == 10 and analysis.sources == {"import": 10} and analysis.guess_count == 10
    assert len(analysis.images) == 3 and len(analysis.items) == 18
    # hand-computed: score = sum over labels of (1 - 0.1 step), a wrong guess counting 1/4
    glob = {(g.image_class, g.layer): [(lab.word, lab.score, lab.count, lab.mean_weight, lab.examples)
                                       for lab in g.labels] for g in analysis.explanations.global_explanations}
    assert glob[("cart", "block1")] == [("wheel", pytest.approx(0.9 + 0.8 + 0.7 / 4), 1, 60.0, ["cart-000"]),
                                        ("star", pytest.approx(0.9), 1, 30.0, ["cart-000"])]
    # clusters 1 and 2 (indices 0 and 1) of block3 share their best label: merged, weights and scores summed
    assert glob[("cart", "block3")] == [("wing", pytest.approx(1.6 + 0.6), 1, 90.0, ["cart-000"])]
    assert glob[("<i>plane</i>", "block2")] == [("star", pytest.approx(0.6), 1, 30.0, [PLANE]),
                                                ("zigzag", pytest.approx(0.5 / 4), 1, 60.0, [PLANE])]
    assert ("cart", "block2") not in glob and not any(c == "fox" for c, _ in glob)
    trends = {(t.image_class, t.word): (t.scores, t.slope) for t in analysis.explanations.trends}
    assert trends[("cart", "wing")] == (pytest.approx([0, 0, 2.2]), pytest.approx(1.1))
    assert trends[("cart", "wheel")][1] == pytest.approx(-1.875 / 2)
    # the embeddings are cached in the store: a second analysis embeds nothing
    with hand.session() as s:
        assert s.scalar(select(Embedding).where(Embedding.model == "HashModel")) is not None
    counting = Embedder(HashModel(), cache=StoreEmbeddingCache(hand), model_id="HashModel")
    again = analyse_study(hand, "hand", model=counting)
    assert counting.encoded == 0 and again.explanations.to_dict() == analysis.explanations.to_dict()


def test_report_shows_the_numbers_escaped(hand, tmp_path):
    analysis = analyse_study(hand, "hand", model=HashModel())
    index = write_label_report(analysis, tmp_path / "report")
    page = index.read_text(encoding="utf-8")
    assert "<i>plane</i>" not in page and "&lt;i&gt;plane&lt;/i&gt;" in page
    assert "1.88" in page and "2.20" in page and "0.12" in page  # global scores (bars and tables)
    assert "+1.10" in page and "-0.94" in page  # trend slopes
    assert "clusters 1 + 2 merged" in page and "90.0%" in page  # local explanation of cart-000, block3
    assert "No annotators yet" in page and "Not run" in page
    assert "--accent: #7a2c8f" in page and '<details id="parameters">' in page  # the shared layout
    assert page.count('class="bar"') == sum(len(g.labels) for g in analysis.explanations.global_explanations)
    data = json.loads((index.parent / "analysis.json").read_text())
    assert data["explanations"] == json.loads(json.dumps(analysis.explanations.to_dict()))
    # every picture the page names exists (inputs of the labelled images, one overlay per labelled map)
    pictures = sorted(p.name for p in (index.parent / "img").iterdir())
    assert len(pictures) == 2 + len(LABELS)
    for name in pictures:
        assert f'src="img/{name}"' in page
    # an earlier report is replaced only with force; a folder holding something else is refused
    with pytest.raises(NetrevealError, match="holds an earlier label report; pass --force"):
        write_label_report(analysis, tmp_path / "report")
    again = write_label_report(analysis, tmp_path / "report", force=True)
    assert again == index and index.is_file()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(NetrevealError, match="not empty"):
        write_label_report(analysis, tmp_path / "busy", force=True)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]


def test_studio_agreement_from_the_stores_concepts(hand, tmp_path):
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    ids = item_ids(hand)
    maps = [ids[("cart-000", "block1", 0)], ids[("cart-000", "block1", 1)], ids[(PLANE, "block1", 0)],
            ids[("fox-002", "block3", 1)]]
    with hand.session() as s:
        ann = Account(username="ann", password_hash="x", role="annotator")
        evil = Account(username="<script>alert(1)</script>", password_hash="x", role="annotator")
        s.add_all([ann, evil])
        s.flush()
        ann_id, evil_id = ann.id, evil.id
        study_id = s.scalar(select(Item.study_id))
    C.create_concept(hand, study_id, ann_id, "round", maps[:2])
    C.create_concept(hand, study_id, ann_id, "pointy", maps[2:])
    C.create_concept(hand, study_id, evil_id, "round", maps[:3])
    C.create_concept(hand, study_id, evil_id, "spike", maps[3:])
    analysis = analyse_study(hand, "hand", model=HashModel())
    ag = analysis.agreement
    assert ag.n_maps == 18
    assert [(p.name, p.concepts, p.named_maps) for p in ag.annotators] == [
        ("<script>alert(1)</script>", 2, 4), ("ann", 2, 4)]
    assert all(p.coverage == pytest.approx(4 / 18) for p in ag.annotators)
    (pair,) = ag.report.pairs
    a = {"<script>alert(1)</script>": ["round", "round", "round", "spike"],
         "ann": ["round", "round", "pointy", "pointy"]}
    assert pair.n_common == 4
    assert pair.ari == pytest.approx(adjusted_rand_score(a[pair.a], a[pair.b]))
    assert pair.ami == pytest.approx(adjusted_mutual_info_score(a[pair.a], a[pair.b]))
    # matched by overlap: round-round (2 maps, same name), spike-pointy (1 map)
    assert pair.name_exact == pytest.approx(2 / 3)
    page = write_label_report(analysis, tmp_path / "r").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "No annotators yet" not in page and f"{pair.ari:.3f}" in page


def test_a_study_without_labels_is_a_clear_error(store):
    make_tiny_study(store, name="empty")
    with pytest.raises(NetrevealError, match="has no labels yet") as err:
        analyse_study(store, "empty", model=HashModel())
    assert "\n" not in str(err.value)
    with pytest.raises(NetrevealError, match="unknown study 'nope'"):
        analyse_study(store, "nope", model=HashModel())


def test_cli_analyse(hand, store_url, tmp_path, capsys):
    db = ["--database-url", store_url]
    out = tmp_path / "rep"
    assert main(["labels", "analyse", "--study", "hand", "--out", str(out), "--quiet", *db]) == 0
    printed = capsys.readouterr().out
    assert str((out / "index.html").resolve()) in printed
    assert "cart: wing 2.2, wheel 1.9, star 0.9; deepest layer (block3): wing" in printed
    assert (out / "analysis.json").is_file()
    assert main(["labels", "analyse", "--study", "hand", "--out", str(out), "--quiet", *db]) == 2
    assert "holds an earlier label report; pass --force to replace it" in capsys.readouterr().err
    assert main(["labels", "analyse", "--study", "hand", "--out", str(out), "--quiet", "--force", *db]) == 0
    capsys.readouterr()
    make_tiny_study(hand, name="bare")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    for argv, message in (
        (["labels", "analyse", "--study", "nope", "--out", str(tmp_path / "a"), *db], "unknown study 'nope'"),
        (["labels", "analyse", "--study", "bare", "--out", str(tmp_path / "b"), *db], "has no labels yet"),
        (["labels", "analyse", "--study", "hand", "--out", str(tmp_path / "busy"), *db], "not empty"),
        (["labels", "analyse", "--study", "hand", "--tcav-runs", "1", *db], "--tcav-runs must be at least 2"),
    ):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("netreveal: error: ") and message in lines[0], lines
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tcav_rows_follow_their_definition(tmp_path):
    from test_crowd_study import make_demo_study

    from netreveal.data.crowd import CrowdConfig
    from netreveal.labels.crowd_study import label_study_with_crowd
    from netreveal.store import open_store

    store = open_store(tmp_path / "demo.db")
    try:
        make_demo_study(store)
        label_study_with_crowd(store, "demo", CrowdConfig(filler_rate=0.0, seed=0))
        analysis = analyse_study(store, "demo", model=HashModel(), tcav=True, tcav_concepts=1, tcav_runs=2,
                                 tcav_set_size=4, tcav_min_images=2, alpha=0.05)
        with pytest.raises(NetrevealError, match="TCAV layer 'nope' is not a layer of study 'demo'"):
            analyse_study(store, "demo", model=HashModel(), tcav=True, tcav_layers=["nope"])
    finally:
        store.close()
    tc = analysis.tcav
    expl = analysis.explanations
    tested = {(r.concept, r.image_class) for r in tc.rows} | {(s["concept"], s["class"]) for s in tc.skipped}
    # per class, the label with the highest global score summed over layers
    for cls in {g.image_class for g in expl.global_explanations}:
        totals: dict[str, float] = {}
        for g in expl.global_explanations:
            if g.image_class == cls:
                for lab in g.labels:
                    totals[lab.word] = totals.get(lab.word, 0.0) + lab.score
        top = min(totals, key=lambda w: (-totals[w], w))
        assert (top, cls) in tested
    assert tc.rows, tc.skipped
    best = [it.best for it in expl.items]
    assert len({(r.concept, r.image_class) for r in tc.rows}) == len(tc.rows)  # one layer each: the best
    for r in tc.rows:
        scores = {g.layer: lab.score for g in expl.global_explanations if g.image_class == r.image_class
                  for lab in g.labels if lab.word == r.concept}
        assert scores[r.layer] == max(scores.values())
        assert 0 <= r.score <= 1 and 0 <= r.random <= 1 and 0 <= r.p_value <= 1
        assert bool(r.warning) == (r.n_class_images < 6)  # the fewest images a test at 0.05 can speak for
        assert r.significant == (r.p_value < 0.05 and not r.warning)
        assert r.n_concept_images == min(40, best.count(r.concept))
        assert r.n_class_images == sum(i.predicted_class == r.image_class for i in analysis.images)
    page = write_label_report(analysis, tmp_path / "rep").read_text()
    assert page.count("<tr class=\"ns-row\">") == sum(not r.significant for r in tc.rows)
    assert page.count("<tr class=\"sig-row\">") == sum(r.significant for r in tc.rows)
    assert page.count("too few class images") == sum(bool(r.warning) for r in tc.rows)
    assert ("with too few images to test" in page) == any(r.warning for r in tc.rows)


def test_short_layer_names_drop_the_shared_prefix_only():
    from netreveal.labels.report import short_layer_names

    assert short_layer_names(["features.block1.conv2", "features.block4.conv3"]) == ["block1.conv2", "block4.conv3"]
    assert short_layer_names(["block1", "block2"]) == ["block1", "block2"]
    assert short_layer_names(["a.x", "a.x"]) == ["a.x", "a.x"]  # never two alike, never empty


def test_slopes_keep_their_sign():
    from netreveal.labels.report import signed

    assert [signed(v) for v in (1.1, -0.9375, 0.0, 2.004)] == ["+1.10", "-0.94", "+0.00", "+2.00"]
    assert signed(float("nan")) == "–"


def test_analysis_pages_share_the_main_reports_look():
    """The base layout of the analysis pages uses the main report's colours, type, header and tables."""
    import re

    from netreveal.report_pages import TEMPLATES

    def rules(name: str) -> dict[str, str]:
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        found = re.findall(r"^\s*([^{}\n]+?)\{([^}]*)\}", text, re.MULTILINE)
        return {selector.strip(): " ".join(body.split()) for selector, body in found}

    shared = rules("_style.css.j2")
    for selector in (":root", "*", "body", "header", "header h1", "nav a", "table", "th", "th, td", ".scroll",
                     "details pre"):
        assert selector in shared, selector
    for layout in ("index.html.j2", "base.html.j2"):  # both draw the one shared stylesheet, unchanged
        assert '<style>\n{% include "_style.css.j2" %}' in (TEMPLATES / layout).read_text(encoding="utf-8")
        redefined = {s for s in set(rules(layout)) & set(shared) if s and not s.startswith("@")}
        assert not redefined, (layout, redefined)
    for page in ("labels.html.j2", "userstudy.html.j2"):
        assert '{% extends "base.html.j2" %}' in (TEMPLATES / page).read_text(encoding="utf-8")


def test_store_embedding_cache_remembers_what_it_read_and_wrote(hand, monkeypatch):
    import numpy as np

    from netreveal.studies import embedding_cache

    queries = []
    real = embedding_cache.stored_vectors
    monkeypatch.setattr(embedding_cache, "stored_vectors",
                        lambda store, texts, *a: queries.append(list(texts)) or real(store, texts, *a))
    plain, remembering = StoreEmbeddingCache(hand), StoreEmbeddingCache(hand, remember=True)
    remembering.put({"wheel": np.ones(3)}, "m")
    assert set(remembering.get(["wheel"], "m")) == {"wheel"} and queries == [[]]  # written: no query
    plain.put({"star": np.full(3, 2.0)}, "m")  # by another process, say
    found = remembering.get(["wheel", "star"], "m")
    assert queries[-1] == ["star"] and found["star"].tolist() == [2.0] * 3
    remembering.get(["wheel", "star"], "m")
    assert queries[-1] == []  # both remembered now
    assert plain.get(["wheel"], "m")["wheel"].tolist() == [1.0] * 3 and queries[-1] == ["wheel"]
