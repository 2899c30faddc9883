"""Occlusion, LIME and KernelSHAP through captum: definitions, planted regions, seeds, registration."""

import torch
from torch import nn

from netreveal import pipeline
from netreveal import results as result_io
from netreveal.attribution.captum_baselines import (
    default_segments,
    default_window,
    kernel_shap,
    lime,
    occlusion,
    superpixels,
)
from netreveal.methods import MethodOptions, get_methods
from netreveal.model.adapter import ModelAdapter

SIZE = 32
BLOCK = 8
REGION_BLOCK = (1, 2)  # block row 1, column 2: rows 8..15, columns 16..23


class RegionModel(nn.Module):
    """Class 0's logit grows with the mean brightness of one 8x8 block; class 1's is 0."""

    def __init__(self, gain: float = 8.0, centre: float = 0.5):
        super().__init__()
        region = torch.zeros(SIZE, SIZE)
        r, c = REGION_BLOCK
        region[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 1
        self.register_buffer("region", region)
        self.gain, self.centre = gain, centre

    def forward(self, x):
        s = (x.mean(1) * self.region).sum((1, 2)) / self.region.sum()
        z = self.gain * (s - self.centre)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def block_images(n: int = 2, seed: int = 0) -> torch.Tensor:
    """4 x 4 blocks of flat colour (dark), the region block white: SLIC finds the blocks exactly."""
    gen = torch.Generator().manual_seed(seed)
    colours = 0.1 + 0.5 * torch.rand(n, 3, SIZE // BLOCK, SIZE // BLOCK, generator=gen)
    colours[:, :, REGION_BLOCK[0], REGION_BLOCK[1]] = 1.0
    return colours.repeat_interleave(BLOCK, 2).repeat_interleave(BLOCK, 3)


def block_ids() -> torch.Tensor:
    rows = torch.arange(SIZE) // BLOCK
    return rows[:, None] * (SIZE // BLOCK) + rows[None, :]


def small_cnn() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[-1].weight.mul_(20)
    return net.eval()


def test_default_sizes_scale_with_the_image():
    assert default_window(64) == (8, 4) and default_window(224) == (28, 14)
    assert default_segments(64, 64) == 51 and default_segments(224, 224) == 100 and default_segments(16, 16) == 16


def test_superpixels_follow_flat_blocks():
    labels, fallbacks = superpixels(block_images(), 16)
    assert fallbacks == 0
    assert labels.shape == (2, SIZE, SIZE) and labels.dtype == torch.long
    for seg in labels:
        assert torch.equal(torch.unique(seg), torch.arange(16))
        pairs = torch.unique(seg.flatten() * 16 + block_ids().flatten())
        assert len(pairs) == 16  # one block per superpixel and one superpixel per block


def test_superpixels_fall_back_to_a_grid_on_noise():
    labels, fallbacks = superpixels(torch.rand(2, 3, 24, 24), 12)  # SLIC merges noise into one segment
    assert fallbacks == 2
    for seg in labels:
        assert torch.equal(torch.bincount(seg.flatten()), torch.full((12,), 48))  # 3 x 4 cells of 8 x 6 px


def test_occlusion_is_the_probability_drop_of_each_window():
    net = small_cnn()
    images = torch.rand(2, 3, SIZE, SIZE)
    targets = torch.tensor([2, 0])
    res = occlusion(net, images, targets, window=BLOCK, stride=BLOCK, baseline="black", batch_size=5)
    with torch.no_grad():
        p = net(images).softmax(-1)[torch.arange(2), targets]
        for r in range(SIZE // BLOCK):
            for c in range(SIZE // BLOCK):
                hidden = images.clone()
                hidden[:, :, r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 0
                drop = p - net(hidden).softmax(-1)[torch.arange(2), targets]
                block = res.raw[:, r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK]
                torch.testing.assert_close(block, drop[:, None, None].expand_as(block), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.target_probs, p)
    assert float(res.raw.abs().max()) > 1e-3


def test_occlusion_highlights_the_region_the_model_reads():
    model = RegionModel()
    images = block_images()
    res = occlusion(model, images, 0, baseline="blur")  # default window 4, stride 2 at 32 px
    region = model.region.bool()
    assert res.params["window"] == [4, 4] and res.params["stride"] == [2, 2]
    top = res.maps.flatten(1).topk(int(region.sum())).indices
    assert bool((region.flatten()[top].float().mean(dim=1) >= 0.9).all())
    assert bool((res.maps[:, ~region].max(dim=1).values < 0.6).all())


def _region_drop(model, images, baseline_value=0.0):
    hidden = images.clone()
    hidden[:, :, model.region.bool()] = baseline_value
    with torch.no_grad():
        return model(images).softmax(-1)[:, 0] - model(hidden).softmax(-1)[:, 0]


def test_kernel_shap_recovers_the_shapley_value_of_the_one_superpixel_that_counts():
    model = RegionModel()
    images = block_images()
    res = kernel_shap(model, images, 0, n_samples=200, segments=16, baseline="black", batch_size=64)
    region_segment = [int(seg[model.region.bool()][0]) for seg in res.extras["segments"]]
    drop = _region_drop(model, images)
    for i, coef in enumerate(res.extras["coefficients"]):
        # f depends on one binary feature only, so it is linear in the samples: the fit is exact
        torch.testing.assert_close(coef[region_segment[i]], drop[i], rtol=1e-4, atol=1e-5)
        others = torch.cat([coef[:region_segment[i]], coef[region_segment[i] + 1:]])
        assert float(others.abs().max()) < 1e-4
    assert bool(res.maps[:, model.region.bool()].eq(1).all())


def test_lime_ranks_the_superpixel_that_counts_first():
    model = RegionModel()
    images = block_images()
    res = lime(model, images, 0, n_samples=200, segments=16, baseline="black")
    drop = _region_drop(model, images)
    for i, coef in enumerate(res.extras["coefficients"]):
        k = int(res.extras["segments"][i][model.region.bool()][0])
        assert int(coef.argmax()) == k
        others = torch.cat([coef[:k], coef[k + 1:]])
        assert float(coef[k]) > 0.5 * float(drop[i])  # ridge shrinks it a little
        assert float(others.abs().max()) < 0.1 * float(coef[k])


def test_lime_and_kernel_shap_are_reproducible_under_a_seed():
    net = small_cnn()
    images = torch.rand(2, 3, 24, 24)
    targets = torch.tensor([1, 2])
    state = torch.get_rng_state()
    for explain in (lime, kernel_shap):
        a = explain(net, images, targets, n_samples=64, segments=12, seed=0, batch_size=16)
        b = explain(net, images, targets, n_samples=64, segments=12, seed=0, batch_size=16)
        c = explain(net, images, targets, n_samples=64, segments=12, seed=1, batch_size=16)
        d = explain(net, images, targets, n_samples=64, segments=12, seed=0, batch_size=7)
        assert torch.equal(a.raw, b.raw) and torch.equal(a.maps, b.maps)
        torch.testing.assert_close(d.raw, a.raw, rtol=1e-4, atol=1e-6)  # same samples in other batches
        assert float((a.raw - c.raw).abs().max()) > 1e-3 * float(a.raw.abs().max())
        assert a.params["seed"] == 0 and c.params["seed"] == 1 and c.provenance["seed"] == 1
        assert a.params["segments"] == 12 and a.params["n_samples"] == 64
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is left as it was


def test_results_round_trip(tmp_path):
    net = small_cnn()
    images = torch.rand(2, 3, 16, 16)
    for res in (lime(net, images, [0, 1], n_samples=32, segments=8), occlusion(net, images, [0, 1])):
        back = result_io.load(result_io.save(res, tmp_path / f"{res.method}.pt"))
        assert back.method == res.method and back.params == res.params
        torch.testing.assert_close(back.maps, res.maps)
        torch.testing.assert_close(back.raw, res.raw)
        for key, value in res.extras.items():
            if isinstance(value, list):
                for x, y in zip(back.extras[key], value):
                    torch.testing.assert_close(x, y)
            else:
                torch.testing.assert_close(back.extras[key], value)


def test_registered_methods_run_through_the_pipeline(tmp_path):
    methods = get_methods("occlusion,lime,kernelshap")
    assert [m.title for m in methods] == ["Occlusion", "LIME", "KernelSHAP"]
    model = RegionModel()
    adapter = ModelAdapter(model, "toy", SIZE, ["region", "other"])
    images = block_images(2, seed=3)
    region = model.region.bool()
    inputs = pipeline.Inputs(["a", "b"], images, [0, 0], ["region"] * 2, [region, region])
    opts = MethodOptions(batch_size=8, seed=0, progress=False)
    runs = [method.configure(opts.__dict__) for method in methods]  # blur baseline
    probs, targets, done = pipeline.run_methods(adapter, inputs, runs, opts, None)
    assert targets.tolist() == [0, 0] and bool((probs[:, 0] > 0.9).all())
    for method in methods:
        result = done[method.name].result
        maps = method.heatmaps(result)
        assert maps.shape == (2, SIZE, SIZE), method.name
        assert float(maps.min()) == 0.0 and float(maps.max()) == 1.0, method.name
        for i in range(2):
            assert bool(region.flatten()[maps[i].flatten().argmax()]), method.name
    assert done["lime"].result.params["segments"] == 16 and done["lime"].result.params["n_samples"] == 256
    index = pipeline.explain(adapter, inputs, runs, opts, tmp_path / "report", steps=8)
    html = index.read_text()
    assert "KernelSHAP" in html and "256 samples over 16 SLIC superpixels" in html and "4x4 px window" in html


def test_lime_sample_weight_is_the_exponential_kernel_on_cosine_distance():
    from netreveal.attribution.captum_baselines import LIME_KERNEL_WIDTH, _lime_similarity

    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        z = (torch.rand(1, 20, generator=gen) < 0.4).long()
        d = 1 - torch.nn.functional.cosine_similarity(z.float(), torch.ones(1, 20))
        expected = torch.exp(-(d ** 2) / (2 * LIME_KERNEL_WIDTH ** 2))
        torch.testing.assert_close(_lime_similarity(None, None, z), expected)
    assert float(_lime_similarity(None, None, torch.zeros(1, 20, dtype=torch.long))) == float(
        torch.exp(torch.tensor(-1 / (2 * LIME_KERNEL_WIDTH ** 2))))
