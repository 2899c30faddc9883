"""Integrated gradients, LIME, KernelSHAP and RISE: the fast paths give the results of the reference
paths, and the model work they ask for is counted (images through forward and backward passes)."""

from __future__ import annotations

import pytest
import torch

from netreveal.attribution import rise as rise_module
from netreveal.attribution.baselines import integrated_gradients, integrated_gradients_reference, path_batch
from netreveal.attribution.captum_baselines import kernel_shap, lime
from netreveal.attribution.rise import rise, rise_reference
from netreveal.attribution.surrogates import reference_coefficients
from netreveal.attribution.tensor_cache import TensorCache
from netreveal.imaging import make_baseline
from netreveal.model.counting import BACKWARD_COST, CountingModel
from netreveal.model.demo import load_demo_model


@pytest.fixture(scope="module")
def demo():
    model, _ = load_demo_model()
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    images[:, :, 16:40, 20:48] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]  # a flat patch SLIC follows
    return model, images


# ---------------------------------------------------------------- integrated gradients


@pytest.mark.parametrize("baseline, target, batch_size", [("black", None, 1), ("blur", [3, 0, 5], 8)])
def test_ig_equals_the_captum_reference(demo, baseline, target, batch_size):
    model, images = demo
    new = integrated_gradients(model, images, target, steps=20, baseline=baseline, batch_size=batch_size)
    old = integrated_gradients_reference(model, images, target, steps=20, baseline=baseline, batch_size=batch_size)
    assert torch.equal(new.targets, old.targets)
    scale = float(old.raw.abs().max())
    torch.testing.assert_close(new.raw, old.raw, rtol=1e-3, atol=1e-4 * scale)
    torch.testing.assert_close(new.maps, old.maps, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(new.target_probs, old.target_probs, rtol=1e-5, atol=1e-6)
    # the delta is a sum over every pixel's attribution minus the score difference: its float error
    # grows with the sum of |attribution| (summation order differs between the paths), not the largest one
    summed = old.raw.abs().flatten(1).sum(dim=1)
    assert torch.all((new.extras["convergence_delta"] - old.extras["convergence_delta"]).abs() <= 1e-5 * summed)
    assert new.params == old.params


@pytest.mark.parametrize("baseline", ["black", "blur"])
def test_ig_costs_one_forward_and_one_backward_per_path_point(demo, baseline):
    model, images = demo
    counted = CountingModel(model)
    steps, n = 50, len(images)
    integrated_gradients(counted, images, steps=steps, baseline=baseline, batch_size=2)
    c = counted.counts
    assert c.backward == n * steps
    # the images and the baselines (one black image serves all) in one no-grad pass, then the path
    assert c.forward == n * steps + (n + 1 if baseline == "black" else 2 * n)
    assert c.forward_equivalents() / n <= 1.2 * steps * (1 + BACKWARD_COST)
    assert c.channels_last == c.forward  # the layout convolutions run fastest in
    assert max(c.batch_sizes) == path_batch(2) and c.calls == 1 + -(-n * steps // path_batch(2))  # full passes


# ---------------------------------------------------------------- LIME and KernelSHAP


@pytest.mark.parametrize("explain, method", [(lime, "lime"), (kernel_shap, "kernelshap")])
def test_batched_surrogates_equal_the_per_sample_reference(demo, explain, method):
    model, images = demo
    res = explain(model, images, None, n_samples=40, segments=12, seed=3, batch_size=7)
    ref = reference_coefficients(method, model, images, make_baseline(images, "blur"), res.extras["segments"].long(),
                                 res.targets, n_samples=40, seed=3, batch_size=7)
    for got, want in zip(res.extras["coefficients"], ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert float(res.raw.abs().max()) > 0


@pytest.mark.parametrize("explain", [lime, kernel_shap])
def test_surrogates_fill_every_pass_across_images(demo, explain):
    model, images = demo
    counted = CountingModel(model)
    explain(counted, images, None, n_samples=40, segments=12, batch_size=16)
    sizes = counted.counts.batch_sizes[1:]  # after the pass that finds the targets
    assert all(s == 16 for s in sizes[:-1]) and 0 < sizes[-1] <= 16
    assert counted.counts.channels_last == counted.counts.forward


def test_kernel_shap_evaluates_each_distinct_coalition_once(demo):
    model, images = demo
    counted = CountingModel(model)
    res = kernel_shap(counted, images[:1], None, n_samples=200, segments=12, batch_size=64)
    perturbed = counted.counts.forward - 1
    assert perturbed < 200  # with 12 superpixels, single and all-but-one coalitions repeat
    counted.reset()
    again = reference_coefficients("kernelshap", counted, images[:1], make_baseline(images[:1], "blur"),
                                   res.extras["segments"].long(), res.targets, n_samples=200, seed=0, batch_size=64)
    assert counted.counts.forward == 200
    torch.testing.assert_close(res.extras["coefficients"][0], again[0], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- RISE


def _counting_mask_maker(monkeypatch) -> list[int]:
    made: list[int] = []
    real = rise_module.rise_masks

    def counted(grids, shifts, size, cell_px):
        made.append(len(grids))
        return real(grids, shifts, size, cell_px)

    monkeypatch.setattr(rise_module, "rise_masks", counted)
    return made


def test_rise_makes_its_masks_once_for_all_images_batches_and_calls(demo, monkeypatch):
    model, images = demo
    cache = TensorCache(64 * 2**20)
    made = _counting_mask_maker(monkeypatch)
    counted = CountingModel(model)
    kwargs = dict(n_masks=48, cell=4, seed=2, batch_size=2)  # batch 2: three groups of images
    first = rise(counted, images, None, mask_cache=cache, **kwargs)
    assert sum(made) == 48
    assert counted.counts.forward == len(images) * (48 + 1)
    later = rise(model, images[1:], None, mask_cache=cache, **kwargs)
    assert sum(made) == 48 and cache.hits == 1
    uncached = rise(model, images, None, mask_cache=None, **kwargs)  # masks made per chunk, as before
    assert sum(made) == 48 + 2 * 48  # again for each group of images
    assert torch.equal(first.raw, uncached.raw)  # same passes: the very same result
    torch.testing.assert_close(later.raw, uncached.raw[1:], rtol=1e-5, atol=1e-6)  # other groups of images


def test_rise_with_cached_masks_equals_the_one_mask_at_a_time_reference(demo):
    model, images = demo
    cache = TensorCache(64 * 2**20)
    ref = rise_reference(model, images[:2], None, n_masks=30, cell=5, seed=7)
    for _ in range(2):  # a miss, then a hit
        got = rise(model, images[:2], None, n_masks=30, cell=5, seed=7, batch_size=16, mask_cache=cache)
        torch.testing.assert_close(got.raw, ref.raw, rtol=1e-5, atol=1e-6)
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)


def test_rise_masks_too_large_for_the_cache_are_made_per_chunk(demo):
    model, images = demo
    cache = TensorCache(10 * 64 * 64 * 4)  # ten masks
    got = rise(model, images[:1], None, n_masks=30, cell=5, seed=7, mask_cache=cache)
    want = rise(model, images[:1], None, n_masks=30, cell=5, seed=7, mask_cache=None)
    assert torch.equal(got.raw, want.raw) and len(cache) == 0 and cache.misses == 0


def test_tensor_cache_keeps_the_most_recent_within_its_budget():
    cache = TensorCache(3 * 400)
    for key in "abc":
        cache.get_or_make(key, lambda: torch.zeros(100))
    cache.get_or_make("a", lambda: torch.ones(100))  # a hit: "a" becomes the most recent
    assert float(cache.get_or_make("a", lambda: torch.ones(100)).sum()) == 0
    cache.get_or_make("d", lambda: torch.zeros(100))  # evicts "b", the least recently used
    made = []
    cache.get_or_make("b", lambda: made.append(1) or torch.zeros(100))
    assert made == [1] and cache.nbytes() <= 1200
    assert not cache.fits(1201) and cache.get_or_make("big", lambda: torch.zeros(400)).numel() == 400
    assert len(cache) == 3  # too big to keep
