"""Grad-CAM against explicit formulas on a tiny net, and the activation/gradient taps below it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netreveal.attribution.gradcam import gradcam
from netreveal.errors import NetrevealError
from netreveal.model.hooks import capture
from netreveal.model.layers import resolve_layers


class TinyNet(nn.Module):
    """conv -> ReLU(inplace) -> global average pool -> linear."""

    def __init__(self, stride: int = 1, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, stride=stride)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def make(seed: int = 0, stride: int = 1, batch: int = 2, size: int = 8):
    torch.manual_seed(seed)
    net = TinyNet(stride)
    images = torch.rand(batch, 3, size, size)
    return net, images


def hand(net: TinyNet, images: torch.Tensor, weights: torch.Tensor):
    """Conv output A (B, K, h, w), dY/dA and the signed Grad-CAM map for per-image class weights.

    ``weights`` (B, K) are the linear-layer weights of the explained score (V[c] for class c).
    Y = sum_k w_k mean_xy ReLU(A_kxy) + b, so dY/dA_kxy = w_k [A_kxy > 0] / (h w),
    alpha_k = mean_xy dY/dA_kxy, map = sum_k alpha_k A_k.
    """
    with torch.no_grad():
        a = F.conv2d(images, net.conv.weight, net.conv.bias, stride=net.conv.stride, padding=1)
    h, w = a.shape[-2:]
    grad = weights[:, :, None, None] * (a > 0).float() / (h * w)
    alpha = grad.mean(dim=(2, 3))
    cam = (alpha[:, :, None, None] * a).sum(dim=1)
    return a, grad, cam


def test_gradcam_matches_hand_computation_at_input_resolution():
    net, images = make()
    with torch.no_grad():
        pred = net(images).argmax(dim=1)
    a, _, cam = hand(net, images, net.fc.weight[pred].detach())
    assert (a < 0).any() and (a > 0).any()
    res = gradcam(net, images, "conv", relu=False, normalize=False)
    assert torch.equal(res.targets, pred)
    torch.testing.assert_close(res.raw, cam)
    torch.testing.assert_close(res.maps, cam)  # same size: no resampling
    with torch.no_grad():
        probs = net(images).softmax(1)[torch.arange(2), pred]
    torch.testing.assert_close(res.target_probs, probs)


def test_relu_and_normalize_options():
    net, images = make(seed=1, stride=2)  # 4x4 layer grid -> bilinear to 8x8
    target = 1
    _, _, cam = hand(net, images, net.fc.weight[[target] * 2].detach())
    up = F.interpolate(cam[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    signed = gradcam(net, images, "conv", target, relu=False, normalize=False)
    torch.testing.assert_close(signed.raw, cam)
    torch.testing.assert_close(signed.maps, up)
    # the ReLU acts at the layer's resolution, then the map is upsampled (the definition) ...
    pos = F.interpolate(cam.clamp_min(0)[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    positive = gradcam(net, images, "conv", target, relu=True, normalize=False)
    torch.testing.assert_close(positive.maps, pos)
    # ... or, on request, after upsampling (a different map wherever neighbouring cells change sign)
    late = gradcam(net, images, "conv", target, relu=True, normalize=False, relu_at="upsampled")
    torch.testing.assert_close(late.maps, up.clamp_min(0))
    assert float((late.maps - positive.maps).abs().max()) > 1e-3
    assert positive.params["relu_at"] == "layer" and late.params["relu_at"] == "upsampled"
    both = gradcam(net, images, "conv", target)
    lo = pos.amin(dim=(1, 2), keepdim=True)
    hi = pos.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(both.maps, (pos - lo) / (hi - lo))
    assert both.params["relu"] and both.params["normalize"]
    with pytest.raises(NetrevealError, match="relu_at must be one of layer, upsampled"):
        gradcam(net, images, "conv", target, relu_at="input")


def test_batch_target_list_with_chunks_and_callable_target():
    net, images = make(seed=2, batch=3)
    targets = [2, 0, 1]
    _, _, cam = hand(net, images, net.fc.weight[targets].detach())
    for bs in (1, 2, 32):
        res = gradcam(net, images, "conv", targets, relu=False, normalize=False, batch_size=bs)
        assert res.targets.tolist() == targets
        torch.testing.assert_close(res.raw, cam)
    res = gradcam(net, images, "conv", torch.tensor(targets), relu=False, normalize=False)
    torch.testing.assert_close(res.raw, cam)

    # A callable target explains any score of the logits: here y0 - 2 y1.
    v = net.fc.weight.detach()
    _, _, cam = hand(net, images, (v[0] - 2 * v[1]).expand(3, -1))
    res = gradcam(
        net,
        images,
        "conv",
        lambda logits: logits[:, 0] - 2 * logits[:, 1],
        relu=False,
        normalize=False,
    )
    torch.testing.assert_close(res.raw, cam)
    assert res.targets.tolist() == [-1, -1, -1]


def test_class_index_out_of_range_raises():
    net, images = make()
    with pytest.raises(NetrevealError, match="out of range"):
        gradcam(net, images, "conv", 3)
    with pytest.raises(NetrevealError, match="out of range"):
        gradcam(net, images, "conv", [0, -1])


def test_target_list_of_wrong_length_raises():
    net, images = make()
    with pytest.raises(NetrevealError, match="3 targets"):
        gradcam(net, images, "conv", [0, 1, 2])


# --- taps ---------------------------------------------------------------------------------------


def test_inplace_relu_after_tapped_conv():
    net, images = make(seed=3)
    a, grad, _ = hand(net, images, net.fc.weight[[1, 1]].detach())
    cap = capture(net, images, "conv", 1)
    # The recorded activation is the conv output before the in-place ReLU, negatives included.
    torch.testing.assert_close(cap.activations["conv"], a)
    assert (cap.activations["conv"] < 0).any()
    torch.testing.assert_close(cap.gradients["conv"], grad)
    # Tapping the in-place ReLU itself: its output and dY/d(ReLU output) = w_k / (h w) everywhere.
    cap = capture(net, images, "relu", 1)
    torch.testing.assert_close(cap.activations["relu"], a.clamp_min(0))
    expected = net.fc.weight[1].detach()[None, :, None, None].expand_as(a) / 64
    torch.testing.assert_close(cap.gradients["relu"], expected)
    assert all(p.requires_grad for p in net.parameters())


class TwiceNet(nn.Module):
    """The same conv runs twice: x -> conv -> ReLU -> conv -> ReLU -> pool -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = F.relu(self.conv(F.relu(self.conv(x))))
        return self.fc(y.mean(dim=(2, 3)))


def test_module_called_twice_picks_the_requested_call():
    torch.manual_seed(4)
    net = TwiceNet()
    images = torch.rand(2, 3, 6, 6)
    w, b = net.conv.weight.detach(), net.conv.bias.detach()
    a1 = F.conv2d(images, w, b, padding=1)
    a2 = F.conv2d(a1.clamp_min(0), w, b, padding=1)
    # d y0 / d a2 = V[0,k] [a2 > 0] / 36; back through the second conv (a transposed conv) and the
    # first ReLU for d y0 / d a1.
    g2 = net.fc.weight[0].detach()[None, :, None, None] * (a2 > 0).float() / 36
    g1 = F.conv_transpose2d(g2, w, padding=1) * (a1 > 0).float()

    first = capture(net, images, "conv", 0, call=0)
    last = capture(net, images, "conv", 0, call=-1)
    assert first.calls == {"conv": 2} and last.calls == {"conv": 2}
    torch.testing.assert_close(first.activations["conv"], a1)
    torch.testing.assert_close(last.activations["conv"], a2)
    assert not torch.allclose(first.activations["conv"], last.activations["conv"])
    torch.testing.assert_close(last.gradients["conv"], g2)
    torch.testing.assert_close(first.gradients["conv"], g1)
    with pytest.raises(NetrevealError, match="2 time"):
        capture(net, images, "conv", 0, call=2)


class ExplodingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.bn(self.conv(x))
        raise RuntimeError("boom inside forward")


@pytest.mark.parametrize("layers", ["conv", "conv,bn", "last:1"])
def test_exception_in_forward_removes_hooks_and_restores_state(layers):
    net = ExplodingNet().train()
    net.conv.bias.requires_grad_(False)
    flags = [p.requires_grad for p in net.parameters()]
    with pytest.raises(RuntimeError, match="boom"):
        capture(net, torch.rand(2, 3, 8, 8), layers, 0)
    for module in net.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == flags


class OrderNet(nn.Module):
    """Declared late -> mid -> early; runs early -> mid -> late."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(5, 6, 1)
        self.mid = nn.Conv2d(4, 5, 3, padding=1)
        self.early = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        y = self.late(torch.relu(self.mid(torch.relu(self.early(x)))))
        return self.fc(y.mean(dim=(2, 3)))


def test_last_selector_follows_forward_order():
    torch.manual_seed(5)
    net = OrderNet()
    images = torch.rand(2, 3, 6, 6)
    assert [n for n, _ in net.named_children()][:3] == ["late", "mid", "early"]
    assert [n for n, _ in resolve_layers(net, "last:2", example=images)] == ["mid", "late"]
    assert [n for n, _ in resolve_layers(net, "first:1", example=images)] == ["early"]
    cap = capture(net, images, "last:2", 1)
    assert list(cap.activations) == ["mid", "late"]
    assert cap.activations["mid"].shape[1] == 5 and cap.activations["late"].shape[1] == 6
    with torch.no_grad():
        mid = net.mid(torch.relu(net.early(images)))
    torch.testing.assert_close(cap.activations["mid"], mid)


def test_unknown_layer_lists_close_names():
    net = OrderNet()
    with pytest.raises(NetrevealError, match="unknown layer 'mdi'.*mid") as info:
        capture(net, torch.rand(1, 3, 6, 6), "mdi")
    assert "\n" not in str(info.value)
    with pytest.raises(NetrevealError, match="unknown layer"):
        gradcam(net, torch.rand(1, 3, 6, 6), "erly.conv")
