"""Label scores, local and global explanations and trends, checked on hand-computed cases."""

import json

import pytest
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.aggregate import (
    explain_labels,
    label_score,
    label_trends,
    local_explanations,
    score_items,
    slope,
)
from netreveal.labels.embed import Embedder
from netreveal.labels.records import LabelRecord

# cos(wheel, tyre) = 0.9; star and wing orthogonal to everything else
VOCAB = {
    "wheel": [1, 0, 0, 0],
    "tyre": [0.9, 0.19**0.5, 0, 0],
    "star": [0, 0, 1, 0],
    "wing": [0, 0, 0, 1],
}
LAYERS = ["l1", "l2", "l3"]


class FakeModel:
    def encode(self, texts, **kwargs):
        out = torch.stack([sum(torch.tensor(VOCAB[w], dtype=torch.float32) for w in t.split())
                           for t in texts])
        return out / out.norm(dim=1, keepdim=True)


@pytest.fixture
def embed():
    return Embedder(FakeModel(), model_id="fake")


def rec(text, step, correct=True, image="img0", cls="cart", layer="l1", cluster=0, weight=10.0):
    return LabelRecord(item_id=f"{image}|{layer}|{cluster}", image=image, image_class=cls,
                       layer=layer, cluster=cluster, weight=weight, text=text, step=step,
                       correct=correct)


def test_label_score_definition():
    # frequency x (1 - 0.1 x mean step) per outcome, wrong guesses / 4
    assert label_score([1, 2, 3], [True, True, True]) == pytest.approx(3 * (1 - 0.1 * 2))
    assert label_score([1, 2, 3], [True, True, False]) == pytest.approx(0.9 + 0.8 + 0.7 / 4)
    assert label_score([6], [False]) == pytest.approx(0.1)
    assert label_score([], []) == 0.0
    with pytest.raises(NetrevealError):
        label_score([10], [True])


def test_score_items_clusters_names_and_scores_labels(embed):
    records = [
        rec("wheel", 1),
        rec("A tyre", 2),
        rec("The wheels", 3, correct=False),
        rec("star!", 1),
        rec("cart", 2),  # only the class name: dropped when cleaned
    ]
    (item,) = score_items(records, embed)
    assert item.n_labels == 5
    assert [c.word for c in item.labels] == ["wheel", "star"]
    wheel, star = item.labels
    assert wheel.score == pytest.approx(0.9 + 0.8 + 0.7 / 4)
    assert (wheel.count, wheel.n_correct, wheel.mean_step) == (3, 2, 2.0)
    assert sorted(wheel.texts) == ["tyre", "wheel", "wheel"]
    assert star.score == pytest.approx(0.9)
    assert item.best == "wheel"


def test_local_explanation_merges_clusters_sharing_a_best_label(embed):
    records = [
        rec("wheel", 1, cluster=0, weight=30.0),
        rec("wheel", 1, cluster=0, weight=30.0),
        rec("tyre", 1, cluster=0, weight=30.0),
        rec("wheel", 2, cluster=1, weight=20.0),
        rec("star", 1, cluster=2, weight=50.0),
        rec("wing", 1, cluster=0, layer="l2", weight=70.0),
    ]
    items = score_items(records, embed)
    (local,) = local_explanations(items, LAYERS)
    assert local.image == "img0" and local.image_class == "cart"
    assert [layer.layer for layer in local.layers] == ["l1", "l2"]
    l1 = local.layers[0].entries
    assert [(e.best, e.clusters, e.weight) for e in l1] == [("wheel", [0, 1], 50.0), ("star", [2], 50.0)]
    assert l1[0].labels[0].score == pytest.approx(3 * 0.9 + 0.8)  # scores summed on merging
    assert l1[0].item_ids == ["img0|l1|0", "img0|l1|1"]


def test_global_explanations_and_trends(embed):
    records = []
    # two cart images: wheel is the best label at l1 and l3 of both; star at l2 of one
    for image, step in (("a", 1), ("b", 3)):
        records += [rec("wheel", step, image=image, layer="l1", weight=40.0),
                    rec("wheel", step, image=image, layer="l3", cluster=0, weight=10.0),
                    rec("wheel", step, image=image, layer="l3", cluster=1, weight=30.0)]
    records += [rec("star", 1, image="a", layer="l2", weight=60.0),
                rec("wing", 2, image="c", cls="plane", layer="l1", weight=5.0)]
    result = explain_labels(records, LAYERS, embed)
    by_key = {(g.image_class, g.layer): g for g in result.global_explanations}
    assert set(by_key) == {("cart", "l1"), ("cart", "l2"), ("cart", "l3"), ("plane", "l1")}
    g1 = by_key[("cart", "l1")]
    assert g1.n_images == 2 and g1.depth == 0
    (top,) = g1.labels
    assert (top.word, top.count, top.mean_weight) == ("wheel", 2, 40.0)
    assert top.score == pytest.approx(0.9 + 0.7)
    assert top.examples == ["a", "b"]  # highest score first
    g3 = by_key[("cart", "l3")].labels[0]  # two clusters per image merged: weight 40 each
    assert (g3.word, g3.mean_weight) == ("wheel", 40.0)
    assert g3.score == pytest.approx(2 * 0.9 + 2 * 0.7)
    trends = {(t.image_class, t.word): t for t in result.trends}
    assert trends[("cart", "wheel")].scores == pytest.approx([1.6, 0.0, 3.2])
    assert trends[("cart", "wheel")].slope == pytest.approx(slope([1.6, 0.0, 3.2]))
    assert trends[("cart", "star")].scores == pytest.approx([0.0, 0.9, 0.0])
    assert trends[("cart", "star")].slope == pytest.approx(0.0)
    assert trends[("plane", "wing")].slope == pytest.approx(-0.4)  # 0.8 at depth 0, then 0
    json.dumps(result.to_dict())
    assert label_trends(result.local, LAYERS) == result.trends


def test_slope_is_least_squares():
    assert slope([0, 1, 2]) == pytest.approx(1.0)
    assert slope([3, 1]) == pytest.approx(-2.0)
    assert slope([1.6, 0.0, 3.2]) == pytest.approx(0.8)
    assert slope([5]) == 0.0


def test_explain_labels_checks_layers(embed):
    with pytest.raises(NetrevealError, match="layer order"):
        explain_labels([rec("wheel", 1, layer="l9")], LAYERS, embed)
    with pytest.raises(NetrevealError, match="twice"):
        explain_labels([rec("wheel", 1)], ["l1", "l1"], embed)


def test_score_items_memo_scores_only_changed_items_and_gives_the_same_result(embed, monkeypatch):
    from netreveal.labels import aggregate

    calls = []
    real = aggregate.cluster_labels
    monkeypatch.setattr(aggregate, "cluster_labels", lambda *a, **k: calls.append(1) or real(*a, **k))
    records = [rec("wheel", 1), rec("tyre", 2), rec("star", 1, layer="l2"), rec("wing", 3, image="img1")]
    memo: dict = {}
    first = score_items(records, embed, memo=memo)
    assert len(calls) == 3 and len(memo) == 3
    again = score_items(records, embed, memo=memo)
    assert len(calls) == 3 and again == first  # nothing changed: nothing clustered again
    more = records + [rec("wing", 2, layer="l2")]
    updated = score_items(more, embed, memo=memo)
    assert len(calls) == 4  # only the item with a new label
    assert updated == score_items(more, embed)  # the same as without a memo
    assert len(memo) == 3
    score_items(records[:1], embed, memo=memo)
    assert len(memo) == 1  # the memo keeps only the items of the last call
