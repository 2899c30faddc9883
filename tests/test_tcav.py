"""TCAV on a toy model whose class 0 is driven by the red channel and class 1 by the green one."""

import math

import pytest
import torch
from torch import nn

from netreveal import results
from netreveal.concepts.tcav import (
    TcavResult,
    concept_images,
    layer_activations,
    layer_gradients,
    random_region_images,
    tcav,
    train_cav,
)
from netreveal.errors import NetrevealError
from netreveal.metrics.alignment import top_region

SIZE = 16


class Toy(nn.Module):
    """features: identity 1x1 conv (channels R, G, B); logit_c = mean_p softplus(4 (x_c,p - 0.5))
    for c = red, green: d logit_red / d feature is positive on the red channel and zero elsewhere."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.features.bias.zero_()

    def forward(self, x):
        f = self.features(x)
        return nn.functional.softplus(4 * (f[:, :2] - 0.5)).mean(dim=(2, 3))


def smooth(n, seed):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    return nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def patched(n, channel, seed):
    """Images with one channel set to 1 on a random 5x5 square (other channels untouched), and
    maps peaking on the square (as a cluster map would)."""
    gen = torch.Generator().manual_seed(seed)
    images = smooth(n, seed + 1)
    maps = torch.zeros(n, SIZE, SIZE)
    for i in range(n):
        y, x = torch.randint(0, SIZE - 5, (2,), generator=gen).tolist()
        images[i, channel, y : y + 5, x : x + 5] = 1.0
        maps[i, y : y + 5, x : x + 5] = 1.0
    return images, maps + 0.01 * torch.rand(n, SIZE, SIZE, generator=gen)


@pytest.fixture(scope="module")
def setup():
    model = Toy().eval()
    pool = random_region_images(smooth(160, 7), 160, fraction=0.1, baseline="mean", seed=3)
    images = smooth(60, 11)
    targets = torch.arange(60) % 2
    return model, pool, images, targets


def test_concept_images_keep_the_map_top_region():
    images = torch.rand(2, 3, SIZE, SIZE)
    maps = torch.rand(2, SIZE, SIZE)
    out = concept_images(images, maps, fraction=0.25, baseline="black", sigma=0)
    region = top_region(maps, 0.25)[:, None].expand_as(images)
    assert torch.equal(out[region], images[region])
    assert torch.all(out[~region] == 0)


def test_train_cav_finds_the_separating_direction():
    gen = torch.Generator().manual_seed(0)
    neg = torch.randn(80, 10, generator=gen)
    pos = torch.randn(80, 10, generator=gen)
    pos[:, 3] += 4.0
    cav, acc = train_cav(pos, neg, seed=0, classifier="logistic")
    assert acc > 0.9
    assert abs(cav.norm().item() - 1) < 1e-5
    assert cav[3] > 0.9
    cav, acc = train_cav(pos, neg, seed=0)  # the reference's SGD linear SVM: noisier, same direction
    assert acc > 0.8 and abs(cav.norm().item() - 1) < 1e-5 and cav[3] > 0.8


def test_tcav_separates_a_driving_concept_from_an_irrelevant_one(setup):
    # with logistic-regression CAVs; the default hinge-loss CAVs are checked against their
    # definition in test_tcav_reference.py
    model, pool, images, targets = setup
    red, red_maps = patched(40, 0, seed=20)
    blue, blue_maps = patched(40, 2, seed=30)
    red_c = concept_images(red, red_maps, fraction=0.1, baseline="mean")
    blue_c = concept_images(blue, blue_maps, fraction=0.1, baseline="mean")
    r = tcav(model, red_c, pool, images, targets, "features", name="red", n_runs=10,
             class_names=["red", "green"], seed=0, classifier="logistic")
    b = tcav(model, blue_c, pool, images, targets, "features", name="blue", n_runs=10, seed=0,
             classifier="logistic")
    assert r.layers == ["features"] and r.classes == [0, 1]
    # red drives class 0: every CAV points up the red channel, so every class-0 image scores
    assert r.scores[0, 0].min() == 1.0
    assert bool(r.significant[0, 0]) and r.p_values[0, 0] < 0.01
    # ... and says nothing about class 1 (its logit ignores red), nor does blue about either class
    assert not bool(r.significant[0, 1])
    assert not bool(b.significant[0, 0]) and not bool(b.significant[0, 1])
    assert r.cav_accuracy.mean() > 0.7 and b.cav_accuracy.mean() > 0.7
    # random-vs-random classifiers cannot beat chance
    assert abs(r.random_accuracy.mean().item() - 0.5) < 0.2
    rows = r.rows()
    assert rows[0]["class"] == "red" and rows[0]["significant"] is True
    assert rows[0]["direction"] == "positive"
    assert math.isclose(rows[0]["tcav"], 1.0)
    assert rows[0]["class_images"] == 30 and rows[0]["warning"] == "" and r.warnings == []
    assert r.params["cav_classifier"] == "logistic" and r.params["min_class_images"] == 6


def test_shared_random_activations_and_gradients_give_the_same_result(setup):
    model, pool, images, targets = setup
    red, red_maps = patched(12, 0, seed=22)
    concept = concept_images(red, red_maps, 0.1, "mean")
    plain = tcav(model, concept, pool, images, targets, "features", n_runs=3, set_size=10, seed=2)
    acts = layer_activations(model, pool, ["features"])
    grads = layer_gradients(model, images, torch.as_tensor(targets), ["features"])
    cavs: dict = {}
    for _ in range(2):  # the second call takes its random-vs-random CAVs from the cache
        shared = tcav(model, concept, pool, images, targets, "features", n_runs=3, set_size=10, seed=2,
                      random_activations=acts, image_gradients=grads, random_cavs=cavs)
        assert torch.equal(shared.scores, plain.scores) and torch.equal(shared.random_scores, plain.random_scores)
        assert torch.equal(shared.p_values, plain.p_values)
        assert torch.equal(shared.random_accuracy, plain.random_accuracy)
        assert len(cavs) == 3  # one per run and layer
    with pytest.raises(NetrevealError, match="image_gradients has no layer 'features'"):
        tcav(model, concept, pool, images, targets, "features", n_runs=2, set_size=10, image_gradients={})
    with pytest.raises(NetrevealError, match=r"random_activations\['features'\] must be"):
        tcav(model, concept, pool, images, targets, "features", n_runs=2, set_size=10,
             random_activations={"features": acts["features"][:5]})


def test_tcav_result_saves_and_loads(setup, tmp_path):
    model, pool, images, targets = setup
    red, red_maps = patched(12, 0, seed=21)
    r = tcav(model, concept_images(red, red_maps, 0.1, "mean"), pool, images, targets, "features",
             n_runs=2, set_size=10, seed=1)
    results.save(r, tmp_path / "tcav.pt")
    back = results.load(tmp_path / "tcav.pt")
    assert isinstance(back, TcavResult)
    assert torch.equal(back.scores, r.scores) and back.params == r.params
