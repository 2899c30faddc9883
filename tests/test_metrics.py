"""Deletion/insertion against curves worked out by hand, and localization on hand-built masks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.metrics import (
    PerturbationScores,
    box_masks,
    default_tolerance,
    deletion_insertion,
    energy_in_mask,
    pointing_game,
)
from netreveal.results import AttributionResult, load, save

GAIN = 4.0


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class QuadrantModel(nn.Module):
    """Logits [GAIN * mean brightness of the top-left quadrant, 0], behind a dropout on the logits.

    The dropout only matters in training mode: analytic results prove the metric runs in eval mode.
    """

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(2))
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = x[:, :, : h // 2, : w // 2].mean(dim=(1, 2, 3))
        return self.drop(torch.stack([GAIN * m, torch.zeros_like(m)], dim=1) + self.offset)


def small_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )


def quadrant_map(size: int = 8) -> torch.Tensor:
    m = torch.zeros(1, size, size)
    m[:, : size // 2, : size // 2] = 1.0
    return m


def trapezoid(ys: list[float]) -> float:
    dx = 1.0 / (len(ys) - 1)
    return sum((a + b) / 2 * dx for a, b in itertools.pairwise(ys))


def test_deletion_insertion_quadrant_model_matches_hand_curves():
    model = QuadrantModel().train()
    images = torch.ones(1, 3, 8, 8)
    best = quadrant_map()
    worst = 1.0 - best
    res = deletion_insertion(model, images, best, 0, steps=8, baseline="black")
    rev = deletion_insertion(model, images, worst, 0, steps=8, baseline="black")
    assert model.training  # mode restored; the analytic values below prove dropout was off

    full, half, none = sig(GAIN), sig(GAIN / 2), sig(0.0)
    # The 16 quadrant pixels rank first (raster order among ties); a step = 8 pixels = 2 rows.
    exp_del = [full, half] + [none] * 7
    exp_ins = [none, half] + [full] * 7
    # Reversed: the quadrant ties at 0 with nothing else and comes last (ranks 48..63).
    rev_del = [full] * 7 + [half, none]
    rev_ins = [none] * 7 + [half, full]
    torch.testing.assert_close(res.fractions, torch.arange(9, dtype=torch.float32) / 8)
    torch.testing.assert_close(res.deletion_curve[0], torch.tensor(exp_del))
    torch.testing.assert_close(res.insertion_curve[0], torch.tensor(exp_ins))
    torch.testing.assert_close(rev.deletion_curve[0], torch.tensor(rev_del))
    torch.testing.assert_close(rev.insertion_curve[0], torch.tensor(rev_ins))

    d_auc = (full + half) / 2 / 8 + (half + none) / 2 / 8 + 6 * none / 8
    i_auc = (none + half) / 2 / 8 + (half + full) / 2 / 8 + 6 * full / 8
    assert res.deletion_auc.item() == pytest.approx(d_auc, abs=1e-6)
    assert res.insertion_auc.item() == pytest.approx(i_auc, abs=1e-6)
    assert rev.deletion_auc.item() == pytest.approx(trapezoid(rev_del), abs=1e-6)
    assert rev.insertion_auc.item() == pytest.approx(trapezoid(rev_ins), abs=1e-6)
    assert res.deletion_auc.item() < rev.deletion_auc.item()
    assert res.insertion_auc.item() > rev.insertion_auc.item()
    assert res.targets.tolist() == [0]


def test_predicted_target_and_other_class():
    model = QuadrantModel()
    images = torch.ones(2, 3, 8, 8)
    maps = quadrant_map().expand(2, 8, 8)
    pred = deletion_insertion(model, images, maps, None, steps=8, baseline="black")
    zero = deletion_insertion(model, images, maps, [0, 0], steps=8, baseline="black")
    other = deletion_insertion(model, images, maps, 1, steps=8, baseline="black")
    assert pred.targets.tolist() == [0, 0]  # sigmoid(GAIN) > 1/2 on the white image
    torch.testing.assert_close(pred.deletion_curve, zero.deletion_curve)
    # Two classes: p(class 1) = 1 - p(class 0) at every step.
    torch.testing.assert_close(other.deletion_curve, 1 - zero.deletion_curve)
    torch.testing.assert_close(other.insertion_auc, 1 - zero.insertion_auc)


def test_attribution_result_supplies_maps_and_explained_targets():
    model = QuadrantModel()
    images = torch.ones(1, 3, 8, 8)
    result = AttributionResult(
        "test", quadrant_map(), torch.tensor([1]), torch.tensor([0.5]), {}, {}
    )
    res = deletion_insertion(model, images, result, steps=8, baseline="black")
    direct = deletion_insertion(model, images, quadrant_map(), 1, steps=8, baseline="black")
    assert res.targets.tolist() == [1]  # the explained class, not the predicted class 0
    torch.testing.assert_close(res.deletion_curve, direct.deletion_curve)


def test_coarse_map_ranks_cells_not_pixels():
    model = QuadrantModel()
    images = torch.ones(1, 3, 8, 8)
    # 2x2 map: the top-left cell (the quadrant the model reads) ranks third.
    coarse = torch.tensor([[[0.2, 1.0], [0.5, 0.1]]])
    res = deletion_insertion(model, images, coarse, 0, steps=4, baseline="black")
    full, none = sig(GAIN), sig(0.0)
    torch.testing.assert_close(res.deletion_curve[0], torch.tensor([full, full, full, none, none]))
    torch.testing.assert_close(res.insertion_curve[0], torch.tensor([none, none, none, full, full]))
    assert res.deletion_auc.item() == pytest.approx(
        (full + full + (full + none) / 2 + none) / 4, abs=1e-6
    )
    assert res.params["ranking"] == "cells" and res.params["map_size"] == [2, 2]

    # Same as the nearest-upsampled 8x8 map, ranked per pixel.
    fine = coarse.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)
    per_pixel = deletion_insertion(model, images, fine, 0, steps=4, baseline="black")
    torch.testing.assert_close(per_pixel.deletion_curve, res.deletion_curve)
    assert per_pixel.params["ranking"] == "pixels"

    # With more steps than cells the curve only moves when a whole cell flips: fractions are k/4,
    # repeated points add zero-width trapezoids, so the areas equal the 4-step ones.
    many = deletion_insertion(model, images, coarse, 0, steps=50, baseline="black")
    assert set(many.fractions.tolist()) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert many.fractions[0] == 0 and many.fractions[-1] == 1
    expected = torch.tensor([full if f < 0.75 else none for f in many.fractions.tolist()])
    torch.testing.assert_close(many.deletion_curve[0], expected)
    torch.testing.assert_close(many.deletion_auc, res.deletion_auc)
    torch.testing.assert_close(many.insertion_auc, res.insertion_auc)


def test_non_divisible_map_size_covers_every_pixel_once():
    model = QuadrantModel()
    images = torch.ones(1, 3, 9, 9)  # quadrant = rows/cols 0..3
    coarse = torch.zeros(1, 2, 2)
    coarse[0, 1, 1] = 1.0  # bottom-right cell first: pixel centres 4.5..8.5 lie in it, rows 4..8
    res = deletion_insertion(model, images, coarse, 0, steps=4, baseline="black")
    full = sig(GAIN)
    # The top-left cell (rows/cols 0..3 = the quadrant) goes second (raster order among zeros).
    torch.testing.assert_close(res.deletion_curve[0, :2], torch.tensor([full, full]))
    torch.testing.assert_close(res.deletion_curve[0, 2:], torch.full((3,), sig(0.0)))


def test_batch_size_chunking_is_identical():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 16, 16, generator=gen)
    all_maps = (torch.rand(3, 4, 4, generator=gen), torch.rand(3, 16, 16, generator=gen))
    # The quadrant model computes each image alone: results must match bit for bit.
    for maps in all_maps:
        one = deletion_insertion(QuadrantModel(), images, maps, steps=10, batch_size=10_000)
        for bs in (1, 7):
            got = deletion_insertion(QuadrantModel(), images, maps, steps=10, batch_size=bs)
            assert torch.equal(got.deletion_curve, one.deletion_curve)
            assert torch.equal(got.insertion_curve, one.insertion_curve)
            assert torch.equal(got.deletion_auc, one.deletion_auc)
            assert torch.equal(got.targets, one.targets)
    # A CNN may pick batch-size dependent kernels: equal up to float32 rounding.
    model = small_cnn()
    for maps in all_maps:
        one = deletion_insertion(model, images, maps, steps=10, batch_size=10_000)
        for bs in (1, 7):
            got = deletion_insertion(model, images, maps, steps=10, batch_size=bs)
            torch.testing.assert_close(got.deletion_curve, one.deletion_curve, rtol=0, atol=1e-6)
            torch.testing.assert_close(got.insertion_curve, one.insertion_curve, rtol=0, atol=1e-6)
            assert torch.equal(got.targets, one.targets)


def test_curve_end_points_are_clean_and_baseline_probabilities():
    model = small_cnn(seed=3)
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    maps = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(3))
    for kind in ("blur", "mean", "black"):
        res = deletion_insertion(model, images, maps, [0, 1, 2, 3], steps=5, baseline=kind)
        with torch.no_grad():
            clean = model(images).softmax(1)[torch.arange(4), res.targets]
            base = model(make_baseline(images, kind)).softmax(1)[torch.arange(4), res.targets]
        torch.testing.assert_close(res.deletion_curve[:, 0], clean)
        torch.testing.assert_close(res.insertion_curve[:, -1], clean)
        torch.testing.assert_close(res.deletion_curve[:, -1], base)
        torch.testing.assert_close(res.insertion_curve[:, 0], base)
        torch.testing.assert_close(
            res.insertion_auc, torch.trapezoid(res.insertion_curve, res.fractions, dim=1)
        )


def test_intermediate_step_matches_explicit_perturbation():
    model = small_cnn(seed=4)
    gen = torch.Generator().manual_seed(5)
    images = torch.rand(2, 3, 8, 8, generator=gen)
    maps = torch.rand(2, 4, 4, generator=gen)
    res = deletion_insertion(model, images, maps, [1, 3], steps=4, baseline="black")
    # Step 1 of 4 deletes the 4 highest cells (each a 2x2 block of pixels).
    x = images.clone()
    for i in range(2):
        top = maps[i].flatten().argsort(descending=True)[:4]
        for cell in top.tolist():
            r, c = divmod(cell, 4)
            x[i, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 0
    with torch.no_grad():
        expected = model(x).softmax(1)[torch.arange(2), torch.tensor([1, 3])]
    torch.testing.assert_close(res.deletion_curve[:, 1], expected)


def test_one_mode_only_and_save_load(tmp_path):
    model = QuadrantModel()
    res = deletion_insertion(
        model,
        torch.ones(1, 3, 8, 8),
        quadrant_map(),
        0,
        steps=8,
        baseline="black",
        modes=("insertion",),
    )
    assert res.deletion_auc is None and res.deletion_curve is None
    assert res.summary() == {"insertion_auc": pytest.approx(res.insertion_auc.item())}
    back = load(save(res, tmp_path / "scores.pt"))
    assert isinstance(back, PerturbationScores)
    torch.testing.assert_close(back.insertion_curve, res.insertion_curve)
    assert back.params == res.params


def test_bad_input_raises():
    model = QuadrantModel()
    images = torch.ones(2, 3, 8, 8)
    maps = torch.rand(2, 8, 8)
    with pytest.raises(NetrevealError, match="callable"):
        deletion_insertion(model, images, maps, lambda logits: logits[:, 0])
    with pytest.raises(NetrevealError, match="larger"):
        deletion_insertion(model, images, torch.rand(2, 16, 16))
    with pytest.raises(NetrevealError, match="3 maps"):
        deletion_insertion(model, images, torch.rand(3, 8, 8))
    with pytest.raises(NetrevealError, match="mode"):
        deletion_insertion(model, images, maps, modes=("deletion", "erase"))
    with pytest.raises(NetrevealError, match="baseline"):
        deletion_insertion(model, images, maps, baseline="white")
    with pytest.raises(NetrevealError, match="out of range"):
        deletion_insertion(model, images, maps, 7)
    with pytest.raises(NetrevealError, match="NaN"):
        deletion_insertion(model, images, torch.full((2, 8, 8), float("nan")))


# --- localization -----------------------------------------------------------------------------


def square_mask(size: int = 32, lo: int = 10, hi: int = 20) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[lo:hi, lo:hi] = True
    return mask


def peak_map(points: list[tuple[int, int]], size: int = 32) -> torch.Tensor:
    m = torch.rand(size, size, generator=torch.Generator().manual_seed(0)) * 0.5
    for y, x in points:
        m[y, x] = 1.0
    return m


def test_pointing_game_distances_and_tolerance():
    assert default_tolerance(224) == 15 and default_tolerance(32) == pytest.approx(15 * 32 / 224)
    mask = square_mask()  # rows/cols 10..19
    maps = torch.stack(
        [
            peak_map([(15, 15)]),  # inside
            peak_map([(5, 5)]),  # sqrt(50) from (10, 10)
            peak_map([(15, 22)]),  # 3 px right of column 19
            peak_map([(15, 21)]),  # 2 px right of column 19
        ]
    )
    masks = mask.expand(4, 32, 32)
    # default tolerance at 32 px: 15 * 32 / 224 = 2.14 px
    assert pointing_game(maps, masks).tolist() == [True, False, False, True]
    assert pointing_game(maps, masks, tolerance=3.0).tolist() == [
        True,
        False,
        False,
        True,
    ]  # strict <
    assert pointing_game(maps, masks, tolerance=3.01).tolist() == [True, False, True, True]
    assert pointing_game(maps, masks, tolerance=7.1).tolist() == [True, True, True, True]
    assert pointing_game(maps, masks, tolerance=0).tolist() == [True, False, False, False]


def test_pointing_game_ties_constant_maps_and_empty_masks():
    mask = square_mask()
    tied = peak_map([(2, 2), (15, 15)])  # one of the tied maxima is inside
    tied_out = peak_map([(2, 2), (30, 30)])
    constant = torch.full((32, 32), 0.3)
    maps = torch.stack([tied, tied_out, constant, peak_map([(15, 15)])])
    masks = torch.stack([mask, mask, mask, torch.zeros(32, 32, dtype=torch.bool)])
    assert pointing_game(maps, masks).tolist() == [True, False, False, False]


def test_pointing_game_low_resolution_map_is_upsampled():
    coarse = torch.zeros(2, 4, 4)
    coarse[:, 1, 1] = 1.0  # bilinear peak at pixels 11..12 of 32
    masks = torch.stack([square_mask(32, 10, 14), square_mask(32, 20, 30)])
    assert pointing_game(coarse, masks, tolerance=1).tolist() == [True, False]
    # the far mask is 20 - 12 = 8 px away (diagonal: 8 * sqrt 2)
    assert pointing_game(coarse, masks, tolerance=8 * math.sqrt(2) + 0.01).tolist() == [True, True]


def test_energy_in_mask_by_hand():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = True
    m = torch.full((1, 4, 4), -5.0)
    m[0, 0, 0] = 3.0
    m[0, 3, 3] = 1.0
    assert energy_in_mask(m, mask).item() == pytest.approx(0.75)
    assert energy_in_mask(torch.zeros(1, 4, 4), mask).item() == 0.0
    # 2x2 map with mass in the top-left cell, bilinear to 4x4: per axis [1, .75, .25, 0].
    coarse = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert energy_in_mask(coarse, mask).item() == pytest.approx(1.75**2 / 2.0**2)


def test_box_masks():
    masks = box_masks(torch.tensor([[1, 2, 3, 5], [0, 0, 4, 4]]), (6, 4))
    assert masks.shape == (2, 6, 4)
    assert masks[0].sum() == 2 * 3 and masks[0, 2:5, 1:3].all()
    assert masks[1].sum() == 16
