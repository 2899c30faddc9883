"""The demo model: a small VGG-style CNN trained on the parts world, shipped with the package.

Ten 3x3 conv layers in four blocks (widths 16-32-64-128, 2-2-3-3 convs), each conv followed by
ReLU, max-pooling between blocks, global average pooling and a linear classifier. Inputs are RGB
images in [0, 1]; the per-channel normalisation (``mean`` / ``std`` buffers) is the first step of
``forward``. Layers are named ``features.block3.conv2`` and so on.

The network is trained with BatchNorm after each conv (``batch_norm=True``); the shipped weights
have every BatchNorm folded into the conv before it (:func:`fuse_batch_norm`), so the shipped model
is plain conv + ReLU like VGG16, and a conv layer's output is what its ReLU sees.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from netreveal.data.partsworld import CLASSES
from netreveal.errors import NetrevealError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_WEIGHTS = ASSETS / "demo_cnn.safetensors"
DEMO_META = ASSETS / "demo_cnn.json"


class DemoCNN(nn.Module):
    """VGG-style classifier for (B, 3, H, W) images in [0, 1] (any H, W >= 8; trained at 64 px)."""

    def __init__(
        self,
        num_classes: int = len(CLASSES),
        widths: Sequence[int] = (16, 32, 64, 128),
        depths: Sequence[int] = (2, 2, 3, 3),
        batch_norm: bool = False,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
    ):
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise NetrevealError("DemoCNN needs as many block widths as block depths")
        self.widths, self.depths, self.batch_norm = tuple(widths), tuple(depths), batch_norm
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for b, (width, depth) in enumerate(zip(widths, depths), start=1):
            if b > 1:
                stages[f"pool{b - 1}"] = nn.MaxPool2d(2)
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for c in range(1, depth + 1):
                layers[f"conv{c}"] = nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm)
                if batch_norm:
                    layers[f"bn{c}"] = nn.BatchNorm2d(width)
                layers[f"relu{c}"] = nn.ReLU(inplace=True)
                channels = width
            stages[f"block{b}"] = nn.Sequential(layers)
        self.features = nn.Sequential(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x)


@torch.no_grad()
def fuse_batch_norm(model: DemoCNN) -> DemoCNN:
    """A ``batch_norm=False`` copy of ``model`` whose convs include the (eval-mode) BatchNorms."""
    if not model.batch_norm:
        return model
    fused = DemoCNN(
        num_classes=model.classifier.out_features,
        widths=model.widths,
        depths=model.depths,
        batch_norm=False,
        mean=model.mean.flatten().tolist(),
        std=model.std.flatten().tolist(),
    )
    source = dict(model.named_modules())
    for name, conv in fused.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        trained, bn = source[name], source[name.replace("conv", "bn")]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.copy_(trained.weight * scale.view(-1, 1, 1, 1))
        bias = trained.bias if trained.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    fused.classifier.load_state_dict(model.classifier.state_dict())
    return fused.to(model.mean.device)


def load_demo_metadata() -> dict:
    """The shipped model's metadata: class names, input size, mean/std, held-out accuracy, training."""
    if not DEMO_META.is_file():
        raise NetrevealError(f"demo model metadata missing: {DEMO_META}")
    return json.loads(DEMO_META.read_text())


def load_demo_model(device: str | torch.device = "cpu") -> tuple[DemoCNN, dict]:
    """The shipped parts-world model (eval mode, fp32) and its metadata dict."""
    from safetensors.torch import load_file

    meta = load_demo_metadata()
    if not DEMO_WEIGHTS.is_file():
        raise NetrevealError(f"demo model weights missing: {DEMO_WEIGHTS}")
    arch = meta["architecture"]
    model = DemoCNN(
        num_classes=len(meta["class_names"]),
        widths=arch["widths"],
        depths=arch["depths"],
        batch_norm=False,
        mean=meta["mean"],
        std=meta["std"],
    )
    state = load_file(str(DEMO_WEIGHTS))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device).eval(), meta
