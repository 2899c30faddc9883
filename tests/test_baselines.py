"""Integrated gradients: completeness against the model's own outputs."""

import torch
from torch import nn

from netreveal.attribution.baselines import integrated_gradients


def test_ig_completeness_on_a_small_cnn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    images = torch.rand(2, 3, 8, 8)
    targets = torch.tensor([0, 2])
    res = integrated_gradients(net, images, targets, steps=200, baseline="black")
    with torch.no_grad():
        gap = (net(images).gather(1, targets[:, None])[:, 0]
               - net(torch.zeros_like(images)).gather(1, targets[:, None])[:, 0])
    torch.testing.assert_close(res.raw.sum(dim=(1, 2, 3)), gap, atol=2e-3, rtol=1e-2)
    assert res.maps.shape == (2, 8, 8) and float(res.maps.max()) == 1.0
