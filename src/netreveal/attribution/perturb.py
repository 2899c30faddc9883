"""What the perturbation methods (occlusion, LIME, KernelSHAP, RISE) share: their targets, a seeded
scope for samplers that draw from torch's global generator, and class probabilities of many
perturbed copies of an image, computed in the memory layout convolutions run fastest in on CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from netreveal.model.passes import forward_in_passes
from netreveal.targets import Target, check_count, class_indices, slice_targets


@torch.no_grad()
def class_targets(model: nn.Module, images: torch.Tensor, target: Target, batch_size: int,
                  layout: torch.memory_format, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The class each image is explained for (B,), from ``target`` as
    :func:`netreveal.targets.resolve_targets` reads it (None: the predicted class), and its
    softmax probability (B,). Images go through the model ``batch_size`` at a time."""
    check_count(target, len(images))
    indices, probs = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        logits = model(x.contiguous(memory_format=layout)).float()
        t = class_indices(slice_targets(target, start, start + len(x)), logits, method)
        indices.append(t)
        probs.append(logits.softmax(dim=1).gather(1, t[:, None]).squeeze(1))
    return torch.cat(indices), torch.cat(probs)


def conv_layout(model: nn.Module) -> torch.memory_format:
    """``channels_last`` for models with 2-d convolutions (oneDNN runs those 1.5-2.5x faster on CPU
    for batches of several images), else the default contiguous layout."""
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


def probabilities(model: nn.Module, images: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """Softmax class probabilities (N, C) of ``images`` (N, 3, H, W), fed in ``layout``."""
    return forward_in_passes(model, images, layout).float().softmax(dim=1)


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
