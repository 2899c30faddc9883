"""RISE: the batched sum equals the one-mask-at-a-time definition, and it finds a planted region."""

import torch
from torch import nn

from netreveal import pipeline
from netreveal import results as result_io
from netreveal.attribution.rise import rise, rise_masks, rise_plan, rise_reference
from netreveal.methods import MethodOptions, get_methods
from netreveal.model.adapter import ModelAdapter

SIZE = 32
BOX = (8, 16, 16, 26)  # rows 8..15, columns 16..25


class RegionModel(nn.Module):
    """Class 0's logit grows with the mean brightness inside BOX; class 1's is 0. Nothing else counts."""

    def __init__(self, size: int = SIZE, box=BOX, gain: float = 12.0, centre: float = 0.4):
        super().__init__()
        region = torch.zeros(size, size)
        region[box[0]:box[1], box[2]:box[3]] = 1
        self.register_buffer("region", region)
        self.gain, self.centre = gain, centre

    def forward(self, x):
        s = (x.mean(1) * self.region).sum((1, 2)) / self.region.sum()
        z = self.gain * (s - self.centre)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def small_cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
    with torch.no_grad():
        net[-1].weight.mul_(20)  # spread the probabilities so masks move them
    return net.eval()


def test_batched_rise_equals_the_one_mask_at_a_time_reference():
    net = small_cnn()
    images = torch.rand(3, 3, 20, 24)
    targets = torch.tensor([0, 2, 1])
    ref = rise_reference(net, images, targets, n_masks=60, cell=5, seed=3)
    for batch_size in (7, 2, 256):  # partial chunks; image groups smaller than the batch; one chunk
        got = rise(net, images, targets, n_masks=60, cell=5, seed=3, batch_size=batch_size)
        torch.testing.assert_close(got.raw, ref.raw, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.maps, ref.maps, rtol=1e-4, atol=1e-5)
    assert float(ref.raw.std()) > 1e-3  # the masks do move the scores


def test_rise_matches_its_formula_and_keeps_everything_when_p_is_one():
    net = small_cnn()
    images = torch.rand(2, 3, 16, 16)
    targets = torch.tensor([1, 0])
    res = rise(net, images, targets, n_masks=40, cell=4, p=0.5, seed=5, batch_size=16)
    grids, shifts, cell_px = rise_plan(40, 4, 0.5, (16, 16), seed=5)
    masks = rise_masks(grids, shifts, (16, 16), cell_px)
    with torch.no_grad():
        masked = (images[:, None] * masks[None, :, None]).flatten(0, 1)  # black baseline: x * m
        probs = net(masked).softmax(-1).view(2, 40, -1)
    expected = torch.einsum("bm,mhw->bhw", probs[torch.arange(2), :, targets], masks) / (40 * 0.5)
    torch.testing.assert_close(res.raw, expected, rtol=1e-5, atol=1e-6)

    full = rise(net, images, targets, n_masks=10, cell=4, p=1.0)
    with torch.no_grad():
        p_full = net(images).softmax(-1)[torch.arange(2), targets]
    torch.testing.assert_close(full.raw, p_full[:, None, None].expand(2, 16, 16), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(full.target_probs, p_full)


def test_rise_masks_are_smooth_shifted_grids_kept_with_probability_p():
    grids, shifts, cell_px = rise_plan(2000, 7, 0.3, (64, 64), seed=0)
    assert cell_px == (10, 10) and int(shifts.min()) >= 0 and int(shifts.max()) <= 9
    assert abs(float(grids.mean()) - 0.3) < 0.01
    masks = rise_masks(grids[:200], shifts[:200], (64, 64), cell_px)
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
    assert abs(float(masks.mean()) - float(grids[:200].mean())) < 0.03
    assert len(torch.unique(shifts[:, 0])) == 10  # every sub-cell shift occurs


def test_rise_concentrates_on_the_region_the_model_reads():
    model = RegionModel()
    images = 0.5 + 0.5 * torch.rand(2, 3, SIZE, SIZE)
    res = rise(model, images, 0, n_masks=1000, cell=7, batch_size=500, seed=0)
    region = model.region.bool()
    k = int(region.sum())
    top = res.maps.flatten(1).topk(k).indices
    precision = region.flatten()[top].float().mean(dim=1)
    inside = res.maps[:, region].mean(dim=1)
    outside = res.maps[:, ~region].mean(dim=1)
    assert bool((precision >= 0.85).all()), precision
    assert bool((inside >= 3 * outside).all()), (inside, outside)
    assert res.params["seed"] == 0 and res.provenance["seed"] == 0


def test_rise_seeds():
    net = small_cnn()
    images = torch.rand(1, 3, 16, 16)
    state = torch.get_rng_state()
    a = rise(net, images, 0, n_masks=30, cell=4, seed=0)
    b = rise(net, images, 0, n_masks=30, cell=4, seed=0)
    c = rise(net, images, 0, n_masks=30, cell=4, seed=1)
    assert torch.equal(a.raw, b.raw)
    assert float((a.raw - c.raw).abs().max()) > 1e-3
    assert torch.equal(state, torch.get_rng_state())  # the global generator is not touched


def test_rise_result_round_trips(tmp_path):
    res = rise(small_cnn(), torch.rand(2, 3, 16, 16), [0, 1], n_masks=20, cell=4, baseline="blur")
    back = result_io.load(result_io.save(res, tmp_path / "rise.pt"))
    assert back.method == "rise" and back.params == res.params
    torch.testing.assert_close(back.maps, res.maps)
    torch.testing.assert_close(back.raw, res.raw)
    torch.testing.assert_close(back.target_probs, res.target_probs)


def _toy_inputs(n: int = 2) -> pipeline.Inputs:
    gen = torch.Generator().manual_seed(0)
    images = 0.2 + 0.3 * torch.rand(n, 3, SIZE, SIZE, generator=gen)
    images[:, :, BOX[0]:BOX[1], BOX[2]:BOX[3]] = 1.0
    masks = [RegionModel().region.bool() for _ in range(n)]
    return pipeline.Inputs([f"toy-{i}" for i in range(n)], images, [0] * n, ["region"] * n, masks)


def test_registered_rise_runs_through_the_pipeline(tmp_path):
    (method,) = get_methods("rise")
    assert method.title == "RISE" and method.heatmaps is not None
    adapter = ModelAdapter(RegionModel(), "toy", SIZE, ["region", "other"])
    inputs = _toy_inputs()
    opts = MethodOptions(batch_size=16, seed=0, progress=False)
    runs = [method.configure(opts.__dict__)]
    probs, targets, done = pipeline.run_methods(adapter, inputs, runs, opts, None)
    assert targets.tolist() == [0, 0] and bool((probs[:, 0] > 0.9).all())
    result = done["rise"].result
    maps = method.heatmaps(result)
    assert maps.shape == (2, SIZE, SIZE)
    assert float(maps.min()) == 0.0 and float(maps.max()) == 1.0
    assert result.params["n_masks"] == 4000 and result.params["baseline"] == "black"
    region = inputs.masks[0]
    for i in range(2):
        assert bool(region.flatten()[maps[i].flatten().argmax()])
    index = pipeline.explain(adapter, inputs, runs, opts, tmp_path / "report", steps=8)
    html = index.read_text()
    assert "RISE" in html and "4000 masks, 7x7 grid" in html
    saved = result_io.load(tmp_path / "report" / "results" / "rise.pt")
    torch.testing.assert_close(saved.maps, maps)
