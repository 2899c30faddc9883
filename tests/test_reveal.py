import math

import pytest
import torch
import torch.nn.functional as F

from netreveal.errors import NetrevealError
from netreveal.store.models import REVEAL_PERCENTS
from netreveal.studies.reveal import (
    feather,
    reveal_alphas,
    reveal_counts,
    reveal_frames,
    reveal_masks,
    reveal_sigma,
)


def test_revealed_fraction_matches_percent_within_one_map_pixel():
    for h, w in [(7, 7), (14, 14), (8, 12), (3, 3), (56, 56)]:
        maps = torch.rand(5, h, w)
        masks = reveal_masks(maps)
        n = h * w
        for s, p in enumerate(REVEAL_PERCENTS):
            fraction = masks[:, s].flatten(1).float().mean(dim=1)
            assert torch.all((fraction - p / 100).abs() <= 1.0 / n + 1e-9), (h, w, p)
            assert torch.all(fraction > 0)


def test_upsampled_fraction_before_blur_matches_percent():
    # integer factor: the image-size mask is a union of whole cells, so the fraction is exact
    maps = torch.rand(4, 14, 14)
    masks = reveal_masks(maps)
    sharp = F.interpolate(masks.float().flatten(0, 1)[:, None], size=(224, 224), mode="nearest")
    assert torch.equal(sharp.flatten(1).mean(dim=1), masks.flatten(2).float().mean(dim=2).flatten())
    # non-integer factor: within one map pixel's worth
    maps = torch.rand(4, 7, 7)
    sharp = F.interpolate(reveal_masks(maps).float().flatten(0, 1)[:, None], size=(50, 50), mode="nearest")
    fractions = sharp.flatten(1).mean(dim=1).view(4, len(REVEAL_PERCENTS))
    for s, p in enumerate(REVEAL_PERCENTS):
        assert torch.all((fractions[:, s] - p / 100).abs() <= 1.0 / 49 + 1e-9)


def test_top_pixels_are_the_strongest_ones():
    # planted: a map whose values are a known permutation; step s reveals its k_s largest values
    h = w = 10
    perm = torch.randperm(h * w)
    maps = perm.float().view(1, h, w) / (h * w)
    masks = reveal_masks(maps)
    for s, k in enumerate(reveal_counts(h * w)):
        chosen = perm.view(h, w)[masks[0, s]]
        assert sorted(chosen.tolist()) == list(range(h * w - k, h * w))


def test_ties_broken_by_position_still_reveal_exact_counts():
    maps = torch.zeros(2, 5, 5)
    masks = reveal_masks(maps)
    assert masks.flatten(2).sum(dim=2).tolist() == [reveal_counts(25)] * 2
    # the first cells in reading order win ties
    assert masks[0, 0].flatten()[0]


def test_frames_nest():
    maps = torch.rand(6, 8, 8)
    masks = reveal_masks(maps)
    for s in range(len(REVEAL_PERCENTS) - 1):
        assert torch.all(masks[:, s] <= masks[:, s + 1])
    alphas = reveal_alphas(maps, (64, 64))
    assert torch.all(alphas[:, :-1] <= alphas[:, 1:] + 1e-6)
    images = torch.rand(6, 3, 64, 64)
    frames = reveal_frames(images, maps)
    shown = (frames - images[:, None]).abs().amax(dim=2) < 1e-6  # pixels shown as they are
    for s in range(len(REVEAL_PERCENTS) - 1):
        assert torch.all(shown[:, s] <= shown[:, s + 1])


def test_frame_is_image_inside_mask_and_background_far_away():
    h, size = 8, 64
    maps = torch.zeros(1, h, h)
    maps[0, 0, 0] = 1.0  # one strong cell in the top-left corner
    images = torch.rand(1, 3, size, size)
    frames = reveal_frames(images, maps, percents=[1.0], background=(0.1, 0.2, 0.3))
    cell = size // h
    assert torch.allclose(frames[0, 0, :, :cell, :cell], images[0, :, :cell, :cell])
    sigma = reveal_sigma((h, h), (size, size))
    far = int(cell + 4 * sigma)
    if far < size:
        bg = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)
        assert torch.allclose(frames[0, 0, :, far:, far:], bg.expand(3, size - far, size - far), atol=1e-3)


def test_frames_blend_image_and_background_with_alpha():
    maps = torch.rand(3, 16, 16)
    images = torch.rand(3, 3, 64, 64)
    alphas = reveal_alphas(maps, (64, 64))
    frames = reveal_frames(images, maps, background=0.5)
    expected = alphas[:, :, None] * images[:, None] + (1 - alphas[:, :, None]) * 0.5
    assert torch.allclose(frames, expected, atol=1e-6)
    assert frames.shape == (3, len(REVEAL_PERCENTS), 3, 64, 64)
    assert torch.equal(reveal_frames(images, maps, batch_size=1), frames)


def test_sigma_follows_the_upsampling_factor():
    assert reveal_sigma((112, 112), (224, 224)) == pytest.approx(3.0)
    assert reveal_sigma((56, 56), (224, 224)) == pytest.approx(6.0)
    assert reveal_sigma((28, 28), (224, 224)) == pytest.approx(12.0)
    assert reveal_sigma((14, 14), (224, 224)) == pytest.approx(16.0)
    assert reveal_sigma((7, 7), (224, 224)) == pytest.approx(24.0)
    assert reveal_sigma((2, 2), (224, 224)) == pytest.approx(24.0)  # clamped beyond x32
    # between x2 and x4: linear in log2 of the factor
    assert reveal_sigma((20, 20), (56, 56)) == pytest.approx(3.0 + 3.0 * (math.log2(56 / 20) - 1.0))
    # x1: a small sigma scaled to the image size
    assert reveal_sigma((224, 224), (224, 224)) == pytest.approx(1.5)
    assert reveal_sigma((448, 448), (448, 448)) == pytest.approx(3.0)
    # non-square factors use their geometric mean: x2 by x4 is x2^1.5, halfway between 3 and 6
    assert reveal_sigma((14, 7), (28, 28)) == pytest.approx(4.5)


def test_alpha_keeps_mask_fully_visible_and_feathers_outside():
    maps = torch.rand(2, 14, 14)
    masks = reveal_masks(maps)
    sharp = F.interpolate(masks.float().flatten(0, 1)[:, None], size=(224, 224), mode="nearest").view(2, -1, 224, 224)
    alphas = reveal_alphas(maps, (224, 224))
    assert torch.all(alphas[sharp > 0] == 1.0)
    outside = alphas[sharp == 0]
    assert outside.max() < 1.0 and outside.max() > 0.2  # a soft edge, not a hard one


def test_coarse_feather_close_to_exact_blur():
    maps = torch.rand(4, 7, 7)
    sharp = F.interpolate(reveal_masks(maps).float().flatten(0, 1)[:, None], size=(224, 224), mode="nearest")
    sigma = reveal_sigma((7, 7), (224, 224))
    fast, exact = feather(sharp, sigma), feather(sharp, sigma, exact=True)
    border = int(3 * sigma)
    assert (fast - exact).abs().max() < 0.04
    assert (fast - exact)[..., border:-border, border:-border].abs().max() < 0.005


def test_bad_inputs():
    with pytest.raises(NetrevealError, match="decrease"):
        reveal_masks(torch.rand(1, 4, 4), [10.0, 5.0])
    with pytest.raises(NetrevealError, match="percents"):
        reveal_masks(torch.rand(1, 4, 4), [0.0])
    with pytest.raises(NetrevealError, match="maps"):
        reveal_masks(torch.rand(4, 4))
    with pytest.raises(NetrevealError, match="images"):
        reveal_frames(torch.rand(1, 1, 8, 8), torch.rand(1, 4, 4))
    with pytest.raises(NetrevealError, match="maps"):
        reveal_frames(torch.rand(2, 3, 8, 8), torch.rand(1, 4, 4))
    with pytest.raises(NetrevealError, match="background"):
        reveal_frames(torch.rand(1, 3, 8, 8), torch.rand(1, 4, 4), background=(0.1, 0.2))
