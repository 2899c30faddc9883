"""Deletion/insertion under the IGOS_pp and RISE conventions against curves worked out by hand from
their definitions, and I-GOS maps ranked by cell in the pipeline."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn

from netreveal import pipeline
from netreveal.attribution.igos import IgosResult
from netreveal.cli import main
from netreveal.cli.explain import METRIC_CONVENTIONS
from netreveal.data.inputs import Inputs
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS, MethodOptions
from netreveal.methods.base import MethodRun
from netreveal.metrics import deletion_insertion
from netreveal.metrics.perturbation import CONVENTIONS

GAIN = 4.0


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class QuadrantModel(nn.Module):
    """Logits [GAIN * mean of the top-left quadrant, 0]; normalises with mean 0.5 (RISE's blur pads
    with the model's mean)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))

    def forward(self, x):
        h, w = x.shape[-2:]
        m = x[:, :, : h // 2, : w // 2].mean(dim=(1, 2, 3))
        return torch.stack([GAIN * m, torch.zeros_like(m)], dim=1)


COARSE = torch.tensor([[[0.2, 1.0], [0.5, 0.1]]])  # cells in turn: (0,1), (1,0), (0,0), (1,1)


def test_cli_choices_are_the_metric_conventions():
    assert tuple(METRIC_CONVENTIONS) == CONVENTIONS == ("netreveal", "igos", "rise")
    with pytest.raises(NetrevealError, match="convention"):
        deletion_insertion(QuadrantModel(), torch.ones(1, 3, 8, 8), COARSE, 0, convention="paper")


def test_igos_convention_soft_cell_masks_and_area_rule():
    """A 2x2 mask upsampled to 8x8 with align_corners: along an axis pixel i weighs the first cell
    1 - i/7 and the second i/7; over the quadrant's pixels 0..3 those average 11/14 and 3/14, so
    each cell's share of the quadrant is a product of two of them."""
    share = {(0, 0): 121 / 196, (0, 1): 33 / 196, (1, 0): 33 / 196, (1, 1): 9 / 196}
    order = [(0, 1), (1, 0), (0, 0), (1, 1)]
    res = deletion_insertion(QuadrantModel(), torch.ones(1, 3, 8, 8), COARSE, 0, steps=50,
                             baseline="black", convention="igos")
    # 4 cells, max(1, 4 // 50) = 1 cell per step
    kept = [1 - sum(share[c] for c in order[:k]) for k in range(5)]
    exp_del = [sig(GAIN * q) for q in kept]
    exp_ins = [sig(GAIN * (1 - q)) for q in kept]
    torch.testing.assert_close(res.deletion_curve[0], torch.tensor(exp_del))
    torch.testing.assert_close(res.insertion_curve[0], torch.tensor(exp_ins))
    torch.testing.assert_close(res.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    # the right-hand sum over steps, start point left out, the last step counting 1 (its cells)
    assert res.deletion_auc.item() == pytest.approx((sum(exp_del[1:4]) + 1) / 4, abs=1e-6)
    assert res.insertion_auc.item() == pytest.approx((sum(exp_ins[1:4]) + 1) / 4, abs=1e-6)
    assert res.params["convention"] == "igos" and res.params["ranking"] == "cells"
    # netreveal's hard cells: deleting cell (0,1) leaves the quadrant untouched
    hard = deletion_insertion(QuadrantModel(), torch.ones(1, 3, 8, 8), COARSE, 0, steps=4, baseline="black")
    assert hard.deletion_curve[0, 1].item() == pytest.approx(sig(GAIN))


def test_igos_convention_steps_of_several_cells():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 9, 9, generator=gen)
    maps = torch.rand(2, 3, 3, generator=gen)
    res = deletion_insertion(QuadrantModel(), images, maps, 0, steps=4, convention="igos")
    # 9 cells, 9 // 4 = 2 per step: points after 0, 2, 4, 6, 8, 9 cells
    torch.testing.assert_close(res.fractions, torch.tensor([0, 2, 4, 6, 8, 9]) / 9)
    for curve, area in ((res.deletion_curve, res.deletion_auc), (res.insertion_curve, res.insertion_auc)):
        expected = (2 * curve[:, 1:5].sum(dim=1) + (9 - 8)) / 9
        torch.testing.assert_close(area, expected)


def test_rise_convention_black_deletion_blurred_insertion_pixel_steps():
    size = 224
    images = torch.ones(1, 3, size, size)
    quadrant = torch.zeros(1, size, size)
    quadrant[:, :112, :112] = 1.0  # 12544 pixels: exactly one of four steps
    res = deletion_insertion(QuadrantModel(), images, quadrant, 0, steps=4, baseline="blur", convention="rise")
    # RISE's substrate: a delta blurred by scipy's gaussian_filter (11 taps, sigma 5, reflect), applied
    # with zero padding to (x - mean) / std. On a constant image of ones it is 1 inside and
    # mean + (1 - mean) * coverage near the border, coverage = the kernel's mass inside the image.
    delta = np.zeros(11)
    delta[5] = 1.0
    k1 = gaussian_filter1d(delta, 5.0)
    coverage = [sum(k1[d + 5] for d in range(-5, 6) if 0 <= i + d < size) for i in range(112)]
    q_blur = 0.5 + 0.5 * (sum(coverage) / 112) ** 2
    full, none = sig(GAIN), sig(0.0)
    exp_del = [full, none, none, none, none]
    exp_ins = [sig(GAIN * q_blur), full, full, full, full]
    torch.testing.assert_close(res.deletion_curve[0], torch.tensor(exp_del))
    torch.testing.assert_close(res.insertion_curve[0], torch.tensor(exp_ins))
    torch.testing.assert_close(res.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    # RISE's area: (sum - first / 2 - last / 2) / steps
    assert res.deletion_auc.item() == pytest.approx((sum(exp_del) - exp_del[0] / 2 - exp_del[-1] / 2) / 4)
    assert res.insertion_auc.item() == pytest.approx((sum(exp_ins) - exp_ins[0] / 2 - exp_ins[-1] / 2) / 4)
    assert res.params["baseline"] == "black / rise blur"


def test_rise_convention_keeps_cells_whole_and_steps_by_pixels():
    # 8x8 image, 2x2 map: 64 pixels in 3 steps of ceil(64 / 3) = 22 pixels; cell (0,1) (rows 0-3,
    # cols 4-7, 16 px) goes first, then 6 pixels of cell (1,0) (row 4 and half of row 5, raster order)
    res = deletion_insertion(QuadrantModel(), torch.ones(1, 3, 8, 8), COARSE, 0, steps=3, convention="rise")
    torch.testing.assert_close(res.fractions, torch.tensor([0, 1 / 3, 2 / 3, 1]))
    assert res.deletion_curve[0, 1].item() == pytest.approx(sig(GAIN))  # the quadrant is intact
    # after 44 pixels: cells (0,1) and (1,0) and 12 pixels of (0,0), rows 0-2 of the quadrant
    assert res.deletion_curve[0, 2].item() == pytest.approx(sig(GAIN * 4 / 16))


def test_igos_maps_are_ranked_by_cell_in_the_pipeline():
    class Adapter:
        model = QuadrantModel()

    raw = torch.tensor([[[0.9, 0.0], [1.0, 1.0]]])  # M: cell (0,1) salient, then (0,0)
    up = torch.nn.functional.interpolate(raw[:, None], size=(8, 8), mode="bilinear", align_corners=True)[:, 0]
    result = IgosResult("igos", 1 - up, torch.tensor([0]), torch.tensor([0.9]), {}, {}, raw=raw)
    method = METHODS["igos"]
    torch.testing.assert_close(method.ranking_maps(result), 1 - raw)
    inputs = Inputs(["a"], torch.ones(1, 3, 8, 8), [0], ["a"], [None])
    run = MethodRun(method, method.options())
    for convention in CONVENTIONS:
        got = pipeline._method_metrics(run, result, Adapter(), inputs, torch.tensor([0]), 4, "black",
                                       MethodOptions(progress=False), convention)
        cells = deletion_insertion(Adapter.model, inputs.images, 1 - raw, 0, steps=4, baseline="black",
                                   convention=convention)
        pixels = deletion_insertion(Adapter.model, inputs.images, 1 - up, 0, steps=4, baseline="black",
                                    convention=convention)
        torch.testing.assert_close(got["deletion_auc"], cells.deletion_auc)
        assert not torch.allclose(cells.deletion_auc, pixels.deletion_auc), convention


def test_evaluate_takes_the_metric_convention(tmp_path, capsys):
    rows = {}
    for convention in ("netreveal", "igos"):
        path = tmp_path / f"{convention}.csv"
        assert main(["evaluate", "--n", "2", "--steps", "5", "--method", "igos", "--mask-size", "4",
                     "--igos-iterations", "1", "--igos-steps", "2", "--metric-convention", convention,
                     "--csv", str(path), "--quiet"]) == 0
        rows[convention] = next(csv.DictReader(path.open()))
    assert rows["netreveal"]["deletion AUC ↓"] != rows["igos"]["deletion AUC ↓"]
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--n", "2", "--metric-convention", "paper"])
    assert stop.value.code == 2
    assert "--metric-convention" in capsys.readouterr().err
