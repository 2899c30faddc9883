"""Taps that mean what the papers mean on BatchNorm/residual nets: ``last:N:block`` (residual block
outputs, after the add and the activation), ``last:N:relu`` (post-activation points, one per call
site), INV's default layers on a ResNet, and results that say which tensor was tapped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from small_models import MEAN, STD, adapter
from torch import nn

from netreveal.inv import explain_inv
from netreveal.methods import METHODS
from netreveal.model.demo import DemoCNN
from netreveal.model.hooks import capture
from netreveal.model.layers import resolve_layers
from netreveal.report.sections.heatmap import describe

TARGETS = torch.tensor([1, 3])
BLOCKS = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


@pytest.fixture(scope="module")
def resnet():
    ad = adapter("resnet18")
    return ad, torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def names(model, selector, images):
    return [n for n, _ in resolve_layers(model, selector, example=images)]


def test_block_selector_names_the_residual_blocks(resnet):
    ad, images = resnet
    assert names(ad.model, "last:9:block", images) == BLOCKS  # resnet18 has eight blocks
    assert names(ad.model, "last:2:block", images) == ["layer4.0", "layer4.1"]
    assert names(ad.model, "last:2", images) == ["layer4.1.conv1", "layer4.1.conv2"]  # unchanged: convs


def test_relu_selector_names_call_sites(resnet):
    """torchvision's BasicBlock calls one ``relu`` module twice: after bn1 (layer4.1.relu#0) and
    after the residual add, where the point is the block's output (layer4.1)."""
    ad, images = resnet
    assert names(ad.model, "last:3:relu", images) == ["layer4.0", "layer4.1.relu#0", "layer4.1"]


def test_block_and_relu_taps_are_the_tensors_a_forward_hook_sees(resnet):
    ad, images = resnet
    net = ad.model.netreveal_inner
    seen: dict[str, list[torch.Tensor]] = {"block": [], "relu": [], "conv2": []}
    handles = [
        net.layer4[1].register_forward_hook(lambda m, a, out: seen["block"].append(out.detach().clone())),
        net.layer4[1].relu.register_forward_hook(lambda m, a, out: seen["relu"].append(out.detach().clone())),
        net.layer4[1].conv2.register_forward_hook(lambda m, a, out: seen["conv2"].append(out.detach().clone())),
    ]
    try:
        with torch.no_grad():
            ad.model(images)
    finally:
        for h in handles:
            h.remove()
    assert len(seen["relu"]) == 2  # the module runs twice per forward pass
    cap = capture(ad.model, images, "last:3:relu", TARGETS)
    torch.testing.assert_close(cap.activations["layer4.1.relu#0"], seen["relu"][0])  # after bn1
    torch.testing.assert_close(cap.activations["layer4.1"], seen["block"][0])  # after the add and ReLU
    torch.testing.assert_close(seen["relu"][1], seen["block"][0])
    assert float(cap.activations["layer4.1"].min()) >= 0
    conv = capture(ad.model, images, "last:1", TARGETS).activations["layer4.1.conv2"]
    torch.testing.assert_close(conv, seen["conv2"][0])
    assert not torch.allclose(conv, seen["block"][0])  # a conv output is not the block's output
    # gradients arrive at the call site asked for: the first call's gradient is not the second's
    assert not torch.allclose(cap.gradients["layer4.1.relu#0"], cap.gradients["layer4.1"])


def test_timm_resnet_blocks_and_activations():
    import timm

    from netreveal.model.adapter import NormalizedModel

    torch.manual_seed(0)
    model = NormalizedModel(timm.create_model("resnet18", num_classes=5), MEAN, STD).eval()
    images = torch.rand(1, 3, 64, 64)
    assert names(model, "last:9:block", images) == BLOCKS
    assert names(model, "last:3:relu", images) == ["layer4.0", "layer4.1.act1", "layer4.1"]


class FunctionalBlock(nn.Module):
    """A residual block that applies its ReLU functionally: relu(x + conv(x))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return F.relu(x + self.conv(x))


class ShiftedConv(nn.Module):
    """Not residual: conv(x) + a constant."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.shift = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        return self.conv(x) + self.shift


def test_block_definition_on_hand_written_modules():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), FunctionalBlock(4), ShiftedConv(4), FunctionalBlock(4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    images = torch.rand(1, 3, 8, 8)
    assert names(model, "all:block", images) == ["1", "3"]
    assert names(model, "all:relu", images) == ["1", "3"]  # functional ReLUs: the blocks' outputs


def test_inv_defaults_to_block_outputs_on_a_resnet_and_keeps_convs_on_the_demo_cnn(resnet):
    ad, images = resnet
    result = explain_inv(ad.model, images[:1], seed=0)
    assert result.layers == BLOCKS
    assert result.params["taps"]["layer4.1"] == "block output, after the residual add and ReLU"
    assert METHODS["inv"].options().layers == "auto:9"
    demo = DemoCNN().eval()
    x = torch.rand(1, 3, 32, 32)
    assert names(demo, "auto:9", x) == names(demo, "last:9", x)


def test_results_and_report_say_which_tensor_was_tapped(resnet):
    ad, images = resnet
    result = METHODS["gradcam"].configure(progress=False).run(ad, images, TARGETS)
    assert result.params["layer"] == "layer4.1"
    assert describe(result.params) == "layer layer4.1 (block output, after the residual add and ReLU)"
    relu = METHODS["gradcam"].configure(layer="layer4.1.relu#0", progress=False).run(ad, images, TARGETS)
    assert relu.params["tap"] == "ReLU output (post-activation), call 0 of 2"
    conv = METHODS["gradcam"].configure(layer="last:1", progress=False).run(ad, images, TARGETS)
    assert conv.params["tap"] == "Conv2d output inside residual block layer4.1 (before the residual add)"


def test_inv_report_shows_the_tap(resnet, tmp_path):
    from netreveal.report.html import Report
    from netreveal.report.sections.inv import inv_story_html

    ad, images = resnet
    result = explain_inv(ad.model, images[:1], "last:2:block", seed=0)
    report = Report(tmp_path / "report", "t")
    html = inv_story_html(report, "img", images[0], result.images[0], result.params["taps"])
    assert "block output, after the residual add and ReLU" in html
