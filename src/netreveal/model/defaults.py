"""The layers a method reads when the user names none: the selector ``auto:N``.

- On a transformer: N transformer blocks ending at the last block whose patch tokens reach the
  class score. A ViT whose head reads the class token only (torchvision's ViT, timm's
  ``global_pool="token"``) ignores the patch tokens of its last block, so their gradient is zero
  and the last block's input (the output of the block before it) is the deepest useful tap; a
  model that pools its patch tokens (Swin, timm ``global_pool="avg"``) uses its last block.
- On a network with residual blocks (ResNet, with or without BatchNorm): the last N residual
  block outputs (after the residual add and the activation), where a convolution's output is not
  what the next activation sees.
- Otherwise (a plain CNN such as the demo model): the last N Conv2d layers, as ``last:N``.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.sites import model_sites

_REACH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def patch_gradient_reaches(model: nn.Module, example: torch.Tensor, name: str) -> bool:
    """Whether the predicted class score has a non-zero gradient on the grid tapped at ``name``
    (one forward and backward pass on ``example[:1]``, cached per model and input shape)."""
    from netreveal.model.hooks import capture

    key = (name, tuple(example.shape[1:]), example.dtype, str(example.device), sum(1 for _ in model.modules()))
    cached = _REACH.setdefault(model, {})
    if key not in cached:
        cap = capture(model, example[:1], [name])
        cached[key] = bool(cap.gradients[name].abs().sum() > 0)
    return cached[key]


def default_layers(model: nn.Module, example: torch.Tensor, count: int = 1) -> list[str]:
    """The names ``auto:count`` selects (see the module docstring), shallow to deep."""
    from netreveal.model.layers import trace_order

    if count < 1:
        raise NetrevealError("layer selector auto:N must select at least one layer")
    sites = model_sites(model, example)
    if sites.transformer:
        blocks = list(sites.transformer_blocks)
        while len(blocks) > 1 and not patch_gradient_reaches(model, example, blocks[-1]):
            blocks.pop()
        return blocks[-count:]
    if sites.residual_blocks:
        return [site.name for site in sites.residual_blocks][-count:]
    order = trace_order(model, example, nn.Conv2d)
    if not order:
        raise NetrevealError("the model has no Conv2d layer, residual block or transformer block; name a layer")
    return order[-count:]
