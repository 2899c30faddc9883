"""Grad-CAM against its definition computed here with plain hooks, and against captum's
LayerGradCam + LayerAttribution.interpolate (the reference implementations apply the ReLU at the
layer's resolution, then upsample bilinearly with half-pixel centres)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netreveal.attribution.gradcam import gradcam

SIZE = 16


def net(seed: int = 0) -> nn.Module:
    """stride-2 conv -> ReLU -> conv (explained, signed output) -> ReLU -> mean -> linear."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def minmax(maps: torch.Tensor) -> torch.Tensor:
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo)


def definition_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Grad-CAM as Selvaraju et al. define it: alpha_k = mean_xy dy_c/dA^k_xy, map = ReLU(sum_k
    alpha_k A^k) at the layer's resolution, bilinearly upsampled (align_corners=False, as captum's
    F.interpolate and pytorch-grad-cam's cv2.resize sample), min-max scaled."""
    saved = {}

    def keep(module, inputs, output):
        saved["a"] = output
        output.register_hook(lambda g: saved.__setitem__("g", g))

    handle = layer.register_forward_hook(keep)
    try:
        logits = model(x)
        logits.gather(1, targets[:, None]).sum().backward()
    finally:
        handle.remove()
    a, g = saved["a"].detach(), saved["g"]
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(dim=1, keepdim=True))
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return minmax(up)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


def test_gradcam_equals_the_definition():
    model, x = net(), images()
    ours = gradcam(model, x, "2")  # the predicted classes
    expected = definition_gradcam(model, model[2], x, ours.targets)
    # every layer map is signed, so where the ReLU acts matters
    flat = ours.raw.flatten(1)
    assert ours.raw.shape[-2:] == (8, 8) and bool((flat < 0).any(1).all()) and bool((flat > 0).any(1).all())
    torch.testing.assert_close(ours.maps, expected, rtol=1e-5, atol=1e-6)


def test_gradcam_equals_captum_layer_gradcam_with_interpolate():
    from captum.attr import LayerAttribution, LayerGradCam

    model, x = net(3), images(6, seed=4)
    ours = gradcam(model, x, "2")
    targets = ours.targets
    attr = LayerGradCam(model, model[2]).attribute(x, target=targets, relu_attributions=True)
    captum = minmax(LayerAttribution.interpolate(attr, (SIZE, SIZE), interpolate_mode="bilinear")[:, 0])
    r = correlation(ours.maps, captum.detach())
    torch.testing.assert_close(r, torch.ones_like(r), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.maps, captum.detach(), rtol=1e-5, atol=1e-6)
    # the other order (ReLU after upsampling) is a different map from the reference's
    late = gradcam(model, x, "2", targets, relu_at="upsampled")
    assert float(correlation(late.maps, captum.detach()).min()) < 1 - 1e-4
