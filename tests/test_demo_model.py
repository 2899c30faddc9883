"""The shipped demo CNN: architecture, BatchNorm folding, normalisation inside, held-out accuracy."""

from __future__ import annotations

import torch
from torch import nn

from netreveal.data.partsworld import CLASSES, PartsWorld
from netreveal.model.demo import DEMO_META, DEMO_WEIGHTS, DemoCNN, fuse_batch_norm, load_demo_model
from netreveal.model.layers import resolve_layers


def _convs(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def test_architecture_names_and_order():
    model = DemoCNN()
    names = _convs(model)
    assert len(names) == 10
    assert names[0] == "features.block1.conv1" and names[-1] == "features.block4.conv3"
    assert "features.block3.conv2" in names
    assert model.classifier.out_features == len(CLASSES)
    x = torch.rand(2, 3, 64, 64)
    last9 = [n for n, _ in resolve_layers(model, "last:9", example=x)]
    assert last9 == names[1:]
    assert model(x).shape == (2, len(CLASSES))


def test_fuse_batch_norm_is_exact():
    torch.manual_seed(0)
    model = DemoCNN(
        batch_norm=True,
        widths=(4, 6, 8, 8),
        depths=(1, 2, 1, 1),
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.3, 0.25),
    )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    model.eval()
    fused = fuse_batch_norm(model).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert _convs(fused) == _convs(model)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_normalisation_is_the_first_step():
    torch.manual_seed(1)
    mean, std = (0.3, 0.5, 0.7), (0.2, 0.25, 0.3)
    model = DemoCNN(mean=mean, std=std).eval()
    plain = DemoCNN(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).eval()
    plain.load_state_dict({**model.state_dict(), "mean": plain.mean, "std": plain.std})
    x = torch.rand(2, 3, 64, 64)
    normalised = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), plain(normalised))


def test_shipped_weights_and_metadata():
    assert DEMO_WEIGHTS.is_file() and DEMO_META.is_file()
    assert DEMO_WEIGHTS.stat().st_size < 5 * 1024 * 1024
    model, meta = load_demo_model()
    assert not model.training
    assert len(_convs(model)) >= 9
    assert meta["class_names"] == list(CLASSES)
    assert meta["input_size"] == 64 and meta["held_out_accuracy"] >= 0.95
    assert meta["held_out"]["images"] >= 1000
    assert {"seed", "epochs", "batch_size", "lr"} <= set(meta["training"])
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(meta["mean"]))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(meta["std"]))


@torch.no_grad()
def test_shipped_model_accuracy_on_fresh_held_out_images():
    model, meta = load_demo_model()
    world = PartsWorld(size=meta["input_size"], seed=meta["parts_world"]["seed"], split="test")
    start = meta["held_out"]["indices"][1] + 100_000  # images no one has looked at yet
    images, labels, _ = world.batch(range(start, start + 200))
    accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95, accuracy
