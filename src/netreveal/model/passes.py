"""Feeding a model many images on a CPU: a few per forward pass, where its kernels run fastest."""

from __future__ import annotations

import torch
from torch import nn

from netreveal.errors import NetrevealError

# On a CPU a forward pass holds at most about this many pixels (4 images of 224 x 224): at 224 px,
# PyTorch's channels-last CPU kernels cost 1.25x (ResNet-50) to 1.8x (EfficientNet-Lite0) more per
# image in one pass of 64 than in passes of 4, and on 64 px images they are flat in the batch size
# (forward table of benchmarks/bench_onnx_inference.py). The ONNX Runtime twin also splits what it
# is given (netreveal.model.onnx_runtime). A GPU takes the whole batch.
CPU_PIXELS_PER_PASS = 4 * 224 * 224


def cpu_pass_size(images: torch.Tensor) -> int:
    """How many of ``images`` (N, C, H, W) one forward pass takes: all on a GPU, on a CPU as many as
    fit in :data:`CPU_PIXELS_PER_PASS` (at least one)."""
    if images.device.type != "cpu":
        return max(1, len(images))
    return max(1, CPU_PIXELS_PER_PASS // (images.shape[-2] * images.shape[-1]))


def forward_in_passes(model: nn.Module, images: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``model``'s logits (N, C) for ``images`` fed in ``layout``, :func:`cpu_pass_size` images per
    pass; NetrevealError when the model returns anything else."""
    step = cpu_pass_size(images)
    outs = [model(images[i : i + step].contiguous(memory_format=layout)) for i in range(0, max(len(images), 1), step)]
    if not all(isinstance(out, torch.Tensor) and out.dim() == 2 for out in outs):
        raise NetrevealError("the model must return logits of shape (batch, classes)")
    return outs[0] if len(outs) == 1 else torch.cat(outs)


__all__ = ["CPU_PIXELS_PER_PASS", "cpu_pass_size", "forward_in_passes"]
