"""SmoothGrad: the mean of a method's raw attribution over noisy copies, with a fixed seed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netreveal.attribution.gradient import input_gradient
from netreveal.attribution.smoothgrad import smoothgrad_noise
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax
from netreveal.methods import METHODS
from netreveal.model.adapter import ModelAdapter

SIZE = 8


class Quadratic(nn.Module):
    """logit_c(x) = sum w_c * x^2: its gradient 2 w_c x is known in closed form."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return (x[:, None] ** 2 * self.w[None]).flatten(2).sum(2)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def smooth(model, images, targets, **settings):
    adapter = ModelAdapter(model, "tiny", SIZE, ["a", "b", "c"])
    method = METHODS["smoothgrad"]
    return method.run(adapter, images, targets, method.options({"progress": False, **settings}))


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_mean_of_gradients_over_the_noisy_copies_of_the_seed():
    model, x, t = small_cnn(), images(), torch.tensor([2, 0])
    result = smooth(model, x, t, smooth_samples=5, smooth_noise=0.2, seed=3)
    z = smoothgrad_noise(5, (3, SIZE, SIZE), seed=3)
    sigma = 0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    expected = torch.stack([input_gradient(model, x + sigma[:, None, None, None] * z[s], t).raw
                            for s in range(5)]).mean(0)
    torch.testing.assert_close(result.raw, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(result.maps, minmax(expected.abs().sum(1)))  # |.| summed over channels
    assert result.targets.tolist() == [2, 0]
    assert result.params["smoothgrad"] == {"base": "gradient", "samples": 5, "noise": 0.2, "seed": 3,
                                           "sigma": "noise * (max(x) - min(x)) per image"}


def test_a_quadratic_score_gives_the_gradient_at_the_mean_noisy_image():
    model, x, t = Quadratic(), images(3), torch.tensor([0, 1, 2])
    w = model.w.detach()
    result = smooth(model, x, t, smooth_samples=4, smooth_noise=0.1, seed=0)
    z = smoothgrad_noise(4, (3, SIZE, SIZE), seed=0).mean(0)
    sigma = 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    torch.testing.assert_close(result.raw, 2 * w[t] * (x + sigma[:, None, None, None] * z), rtol=1e-5, atol=1e-6)
    n = 500
    many = smooth(model, x, t, smooth_samples=n, smooth_noise=0.1, seed=0)
    # the noise averages out: the mean of n standard normals stays within 5 / sqrt(n) (5 sd)
    bound = 2 * w[t].abs() * sigma[:, None, None, None] * 5 / n ** 0.5
    assert bool(((many.raw - 2 * w[t] * x).abs() <= bound + 1e-6).all())


def test_seed_and_zero_noise():
    model, x, t = small_cnn(), images(), torch.tensor([1, 1])
    a = smooth(model, x, t, smooth_samples=3, seed=0)
    b = smooth(model, x, t, smooth_samples=3, seed=0)
    c = smooth(model, x, t, smooth_samples=3, seed=1)
    assert torch.equal(a.raw, b.raw) and not torch.allclose(a.raw, c.raw)
    plain = smooth(model, x, t, smooth_samples=3, smooth_noise=0.0)
    torch.testing.assert_close(plain.raw, input_gradient(model, x, t).raw)


def test_any_method_with_a_raw_attribution_can_be_smoothed():
    model, x, t = small_cnn(), images(), torch.tensor([0, 2])
    result = smooth(model, x, t, smooth_base="gradcam", layer="1", smooth_samples=3, smooth_noise=0.1, seed=2)
    adapter = ModelAdapter(model, "tiny", SIZE, ["a", "b", "c"])
    gradcam = METHODS["gradcam"]
    z = smoothgrad_noise(3, (3, SIZE, SIZE), seed=2)
    sigma = 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    raws = [gradcam.run(adapter, x + sigma[:, None, None, None] * z[s], t,
                        gradcam.options(layer="1", progress=False)).raw for s in range(3)]
    torch.testing.assert_close(result.raw, torch.stack(raws).mean(0))
    assert result.params["base_params"]["layer"] == "1"
    with pytest.raises(NetrevealError, match="--smooth-base must be one of"):
        METHODS["smoothgrad"].options(smooth_base="sag")
