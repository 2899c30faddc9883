"""What the perturbation methods (occlusion, LIME, KernelSHAP, RISE) share: target checks, a seeded
scope for samplers that draw from torch's global generator, and class probabilities of many
perturbed copies of an image, computed in the memory layout convolutions run fastest in on CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from netreveal.errors import NetrevealError


def check_targets(targets, n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Targets as a long tensor (n,) on ``device``; one class index is used for every image."""
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if targets.numel() == 1 and n > 1:
        targets = targets.expand(n)
    if targets.numel() != n:
        raise NetrevealError(f"got {targets.numel()} targets for a batch of {n} images")
    return targets.to(device) if device is not None else targets


def conv_layout(model: nn.Module) -> torch.memory_format:
    """``channels_last`` for models with 2-d convolutions (oneDNN runs those 1.5-2.5x faster on CPU
    for batches of several images), else the default contiguous layout."""
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


def probabilities(model: nn.Module, images: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """Softmax class probabilities (N, C) of ``images`` (N, 3, H, W), fed in ``layout``."""
    return model(images.contiguous(memory_format=layout)).float().softmax(dim=1)


def target_probs(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 layout: torch.memory_format) -> torch.Tensor:
    """The probability (N,) of class ``targets[i]`` for each of ``images``."""
    return probabilities(model, images, layout).gather(1, targets[:, None]).squeeze(1)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global CPU generator for a block and restore its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield
