"""TCAV against a port of its definition as tensorflow/tcav and captum compute it: the CAV is the
normal of a hinge-loss linear separator (scikit-learn's SGDClassifier with the references'
alpha 0.01, max_iter 1000, tol 1e-3) of the same activations, a class's TCAV score is the share of
its images with a positive directional derivative, and significance is the two-sided t-test of the
concept runs' scores against the random runs'."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import ttest_ind
from sklearn.linear_model import SGDClassifier
from test_tcav import SIZE, Toy, patched, smooth

from netreveal.concepts.cav import held_out, train_cav
from netreveal.concepts.tcav import (
    TcavWarning,
    concept_images,
    layer_activations,
    layer_gradients,
    min_class_images_for,
    random_region_images,
    random_run_sets,
    tcav,
)


def reference_cav(concept: torch.Tensor, negative: torch.Tensor, seed: int) -> tuple[np.ndarray, float]:
    """tensorflow/tcav's CAV: the concept takes label 0, the negatives 1, and the CAV is -coef_ (the
    separator's normal towards the concept); trained on the rows ``held_out`` leaves for training."""
    x = torch.cat([concept, negative]).double().numpy()
    y = np.r_[np.zeros(len(concept)), np.ones(len(negative))].astype(np.int64)
    test = held_out(len(concept), len(negative), 0.33, seed).numpy()
    lm = SGDClassifier(loss="hinge", alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
    lm.fit(x[~test], y[~test])
    cav = -lm.coef_[0]
    return cav / np.linalg.norm(cav), float((lm.predict(x[test]) == y[test]).mean())


def test_cav_is_the_normal_of_the_hinge_loss_separator():
    gen = torch.Generator().manual_seed(0)
    neg = torch.randn(30, 12, generator=gen)
    pos = torch.randn(30, 12, generator=gen) + torch.linspace(-1, 1, 12)
    for seed in (0, 1, 7):
        cav, acc = train_cav(pos, neg, seed=seed)
        expected, expected_acc = reference_cav(pos, neg, seed)
        np.testing.assert_allclose(cav.numpy(), expected, rtol=1e-6, atol=1e-7)
        assert acc == expected_acc


def test_tcav_equals_the_port_of_its_definition():
    model = Toy().eval()
    pool = random_region_images(smooth(80, 7), 80, fraction=0.1, baseline="mean", seed=3)
    images = smooth(24, 11)
    targets = torch.arange(24) % 2
    red, maps = patched(16, 0, seed=20)
    concept = concept_images(red, maps, fraction=0.1, baseline="mean")
    n_runs, seed = 4, 5
    result = tcav(model, concept, pool, images, targets, "features", n_runs=n_runs, seed=seed)
    assert result.params["cav_classifier"] == "hinge" and "SGDClassifier(loss='hinge'" in result.params["classifier"]

    acts_c = layer_activations(model, concept, ["features"])["features"]
    acts_r = layer_activations(model, pool, ["features"])["features"]
    grads = layer_gradients(model, images, targets, ["features"])["features"].double().numpy()
    scores, rscores = np.zeros((2, n_runs)), np.zeros((2, n_runs))
    for r, (a, b) in enumerate(random_run_sets(len(pool), len(concept), n_runs, seed)):
        cav, _ = reference_cav(acts_c, acts_r[a], seed + r)
        rcav, _ = reference_cav(acts_r[a], acts_r[b], seed + r)
        for c in (0, 1):
            mine = targets.numpy() == c
            scores[c, r] = np.mean(grads[mine] @ cav > 0)
            rscores[c, r] = np.mean(grads[mine] @ rcav > 0)
    np.testing.assert_allclose(result.scores[0].numpy(), scores, atol=1e-6)
    np.testing.assert_allclose(result.random_scores[0].numpy(), rscores, atol=1e-6)
    for c in (0, 1):
        with warnings.catch_warnings():  # class 0's concept scores are all 1: a constant sample
            warnings.simplefilter("ignore", RuntimeWarning)
            p = ttest_ind(scores[c], rscores[c]).pvalue
        assert result.p_values[0, c].item() == pytest.approx(p, rel=1e-5)  # our scores are float32
        assert bool(result.significant[0, c]) == (p < 0.05)
    assert bool(result.significant[0, 0]) and result.scores[0, 0].mean() > 0.9  # red drives class 0


def test_the_minimum_number_of_class_images_is_where_a_sign_test_can_reject():
    assert min_class_images_for(0.05) == 6  # 2 / 2**6 = 0.031 < 0.05 <= 2 / 2**5
    assert min_class_images_for(0.01) == 8 and min_class_images_for(0.0625) == 6
    for level in (0.05, 0.01, 0.001):
        n = min_class_images_for(level)
        assert 2 * 0.5**n < level <= 2 * 0.5 ** (n - 1)


def test_a_class_with_too_few_images_is_never_significant():
    model = Toy().eval()
    pool = random_region_images(smooth(80, 7), 80, fraction=0.1, baseline="mean", seed=3)
    images = smooth(11, 12)
    targets = torch.tensor([0] + [1] * 10)  # one image of class 0: red drives its logit
    red, maps = patched(16, 0, seed=20)
    concept = concept_images(red, maps, fraction=0.1, baseline="mean")
    with pytest.warns(TcavWarning, match="class red: 1 class image"):
        result = tcav(model, concept, pool, images, targets, "features", n_runs=6, seed=0,
                      class_names=["red", "green"])
    assert result.p_values[0, 0] < 0.05  # the t-test over runs alone would call it significant
    assert not bool(result.significant[0, 0])
    assert result.class_counts == [1, 10] and result.params["min_class_images"] == 6
    assert len(result.warnings) == 1 and "fewer than 6" in result.warnings[0]
    first, second = result.rows()
    assert first["warning"] and first["significant"] is False and first["class_images"] == 1
    assert second["warning"] == ""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lenient = tcav(model, concept, pool, images, targets, "features", n_runs=6, seed=0, min_class_images=1)
    assert bool(lenient.significant[0, 0]) and lenient.warnings == []
    assert images.shape[-1] == SIZE
