"""LIME's fill of switched-off superpixels: each one's own mean colour, as the lime package's
``hide_color=None`` does, or the baseline image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netreveal.attribution.captum_baselines import lime, superpixel_means
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS
from netreveal.model.adapter import ModelAdapter

SIZE = 24


class Recorder(nn.Module):
    """A small CNN that keeps every batch it is shown."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 3))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.net(x)


def lime_package_fill(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The lime package's ``fudged_image`` for ``hide_color=None`` (H, W, 3): every superpixel in the
    mean of each colour channel over its pixels."""
    fudged = image.copy()
    for x in np.unique(segments):
        fudged[segments == x] = (np.mean(image[segments == x][:, 0]), np.mean(image[segments == x][:, 1]),
                                 np.mean(image[segments == x][:, 2]))
    return fudged


def test_superpixel_means_are_the_lime_packages_fudged_image():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, SIZE, SIZE, generator=gen)
    segments = (torch.arange(SIZE)[:, None] // 5 * 7 + torch.arange(SIZE)[None, :] // 7) % 11
    expected = lime_package_fill(image.permute(1, 2, 0).double().numpy(), segments.numpy())
    ours = superpixel_means(image, segments)
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-6)
    assert superpixel_means(image[None], segments).shape == (1, 3, SIZE, SIZE)


def test_perturbed_images_show_hidden_superpixels_in_their_mean_colour():
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    hidden_any = False
    for i in range(2):  # one image per call, so every perturbed input the model sees is of image i
        model = Recorder().eval()
        result = lime(model, images[i:i + 1], i, n_samples=40, segments=9, seed=0, batch_size=16, fill="mean")
        assert result.params["fill"] == "mean" and result.params["baseline"] == "superpixel mean colour"
        perturbed = torch.cat(model.seen[1:])  # the first batch predicts the unperturbed image
        assert 1 <= perturbed.shape[0] <= 40  # each distinct sample is scored once
        x, seg = images[i], result.extras["segments"][0].long()
        means = superpixel_means(x, seg)
        for z in perturbed:
            # the sample's on/off vector: a superpixel is on where it shows the image itself
            on = torch.tensor([torch.equal(z[:, seg == k], x[:, seg == k]) for k in range(int(seg.max()) + 1)])
            hidden_any |= bool((~on).any())
            definition = torch.where(on[seg][None], x, means)  # each hidden superpixel = its mean colour
            torch.testing.assert_close(z, definition, rtol=0, atol=1e-6)
    assert hidden_any


def test_the_baseline_fill_and_the_method_option():
    model = Recorder().eval()
    images = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    result = lime(model, images, 0, n_samples=16, segments=9, baseline="black", batch_size=16)  # the default fill
    assert result.params["fill"] == "baseline" and result.params["baseline"] == "black"
    for z in torch.cat(model.seen[1:]):
        assert bool(((z == images[0]) | (z == 0)).all())  # each pixel is the image's or black
    with pytest.raises(NetrevealError, match="LIME fill must be one of mean, baseline"):
        lime(model, images, 0, n_samples=16, segments=9, fill="grey")
    method = METHODS["lime"]
    assert method.options().lime_fill == "baseline"
    adapter = ModelAdapter(model, "rec", SIZE, ["a", "b", "c"])
    run = method.run(adapter, images, torch.tensor([0]), method.options(lime_fill="mean", samples=16,
                                                                         segments=9, progress=False))
    assert run.params["fill"] == "mean" and run.params["baseline"] == "superpixel mean colour"
    with pytest.raises(NetrevealError, match="--lime-fill must be one of baseline, mean"):
        method.options(lime_fill="grey")
