"""Grad-CAM++ and LayerCAM against their definitions on tiny conv nets.

Grad-CAM++ is checked against the paper's formula with the exponential score Y = exp(S) and its
second and third derivatives taken by autograd (on a net where S is linear in the tapped
activation, as the closed form assumes); LayerCAM against ReLU(g) * A summed over channels."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from netreveal.imaging import minmax, upsample
from netreveal.methods import METHODS
from netreveal.model.adapter import ModelAdapter


def linear_head_net(seed: int = 0) -> nn.Module:
    """conv -> ReLU (tapped as "act") -> global mean -> linear: the logit is linear in the tap."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


def deep_head_net(seed: int = 0) -> nn.Module:
    """conv -> ReLU (tapped) -> conv -> ReLU -> mean -> linear: gradients vary by position and sign."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def tap(model: nn.Module, x: torch.Tensor, cls: int):
    """The activation A of module "1" for one image and dS/dA of its class logit S (graph kept)."""
    head = model[2:]
    a = model[:2](x).detach().requires_grad_(True)
    s = head(a)[0, cls]
    (g,) = torch.autograd.grad(s, a, create_graph=True)
    return a, s, g


def run(name: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor):
    adapter = ModelAdapter(model, "tiny", x.shape[-1], ["a", "b", "c"])
    method = METHODS[name]
    return method.run(adapter, x, targets, method.options(layer="1", progress=False))


def test_gradcam_plus_plus_is_the_papers_formula_for_an_exponential_score():
    model = linear_head_net()
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 2])
    result = run("gradcam++", model, x, targets)
    for i, cls in enumerate(targets.tolist()):
        a, s, _ = tap(model, x[i:i + 1], cls)
        y = torch.exp(s)
        (dy,) = torch.autograd.grad(y, a, create_graph=True)
        d2 = torch.zeros_like(a)
        d3 = torch.zeros_like(a)
        # diagonal second and third derivatives, one element at a time
        for idx in itertools.product(*map(range, a.shape)):
            (h,) = torch.autograd.grad(dy[idx], a, create_graph=True)
            (t,) = torch.autograd.grad(h[idx], a, retain_graph=True)
            d2[idx], d3[idx] = h[idx].detach(), t[idx]
        alpha = d2 / (2 * d2 + a.detach().sum(dim=(2, 3), keepdim=True) * d3)
        alpha = torch.nan_to_num(alpha, nan=0.0)
        w = (alpha * dy.detach().clamp_min(0)).sum(dim=(2, 3), keepdim=True)
        expected = (w * a.detach()).sum(dim=1)[0]  # carries the factor exp(S) our weights leave out
        torch.testing.assert_close(result.raw[i] * torch.exp(s.detach()), expected, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result.maps[i], minmax(upsample(expected[None].clamp_min(0), (6, 6)))[0],
                                   rtol=1e-4, atol=1e-5)
    assert result.method == "gradcam++" and result.targets.tolist() == [0, 2]
    assert "exp(logit)" in result.params["weights"]


def test_gradcam_plus_plus_first_order_form():
    model = deep_head_net()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([1, 0, 2])
    result = run("gradcam++", model, x, targets)
    assert bool(torch.isfinite(result.raw).all())
    for i, cls in enumerate(targets.tolist()):
        a, _, g = tap(model, x[i:i + 1], cls)
        a, g = a.detach(), g.detach()
        denominator = 2 * g ** 2 + a.sum(dim=(2, 3), keepdim=True) * g ** 3
        alpha = torch.where(denominator != 0, g ** 2 / denominator, torch.zeros_like(g))
        w = (alpha * g.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
        torch.testing.assert_close(result.raw[i], (w * a).sum(dim=1)[0], rtol=1e-4, atol=1e-6)


def test_gradcam_plus_plus_alpha_is_zero_where_its_denominator_vanishes():
    from netreveal.methods.gradcampp import GradCAMPlusPlus

    a = torch.tensor([[[[1.0, 1.0], [0.0, 2.0]]]])  # sum 4
    g = torch.tensor([[[[0.0, -0.5, 1.0, 2.0]]]]).reshape(1, 1, 2, 2)  # g = 0, and 2g^2 + 4g^3 = 0 at g = -0.5
    w = GradCAMPlusPlus().weights(a, g)
    # alpha: 0, 0, 1 / (2 + 4) at g = 1, 4 / (8 + 32) at g = 2; weight: sum alpha * ReLU(g)
    torch.testing.assert_close(w, torch.tensor([[[[1 / 6 * 1.0 + 4 / 40 * 2.0]]]]))


def test_layercam_weighs_each_position_by_its_positive_gradient():
    model = deep_head_net(3)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([2, 1, 0])
    result = run("layercam", model, x, targets)
    for i, cls in enumerate(targets.tolist()):
        a, _, g = tap(model, x[i:i + 1], cls)
        a, g = a.detach(), g.detach()
        assert bool((g < 0).any()) and bool((g > 0).any())
        expected = (g.clamp_min(0) * a).sum(dim=1)[0]
        torch.testing.assert_close(result.raw[i], expected, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result.maps[i], minmax(upsample(expected[None].clamp_min(0), (8, 8)))[0],
                                   rtol=1e-4, atol=1e-5)
    grad_cam = run("gradcam", model, x, targets)
    assert float((grad_cam.raw - result.raw).abs().max()) > 1e-4  # a different map than Grad-CAM's


def strided_net(seed: int = 0) -> nn.Module:
    """stride-2 conv -> ReLU -> conv (tapped as "2", signed) -> ReLU -> mean -> linear: the tapped
    layer has half the input's resolution, so its maps are upsampled."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()


def test_every_cam_variant_applies_its_relu_before_upsampling():
    # pytorch-grad-cam's BaseCAM (Grad-CAM, Grad-CAM++, LayerCAM alike) and captum's LayerGradCam
    # take the positive part at the layer's resolution and only then resize the map
    model = strided_net()
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    targets = torch.tensor([0, 1, 2])
    adapter = ModelAdapter(model, "tiny", 12, ["a", "b", "c"])
    for name in ("gradcam", "gradcam++", "layercam"):
        method = METHODS[name]
        result = method.run(adapter, x, targets, method.options(layer="2", progress=False))
        assert result.raw.shape[-2:] == (6, 6)
        definition = minmax(upsample(result.raw.clamp_min(0), (12, 12)))
        torch.testing.assert_close(result.maps, definition, rtol=1e-5, atol=1e-6)
        assert result.params["relu_at"] == "layer"
        torch.testing.assert_close(method.map_from_raw(result.raw, (12, 12)), definition, rtol=1e-5, atol=1e-6)
        late = minmax(upsample(result.raw, (12, 12)).clamp_min(0))
        if name != "layercam":  # the other order differs; LayerCAM's map is >= 0 below a ReLU (g = 0 where A < 0)
            assert float((late - result.maps).abs().max()) > 1e-3, name
