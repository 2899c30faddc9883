"""Grad-CAM, batched, all in torch.

map_i = sum_k alpha_k A^k with alpha_k = mean_xy d y_c / d A^k_xy, for each image i and its target c.
The backward pass stops at the tapped layer (see ``netreveal.model.hooks``), so the cost is one
forward plus the backward of the layers above the tapped one. The computation is the
:class:`~netreveal.attribution.cam.CAM` template with Grad-CAM's channel weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from netreveal.attribution.cam import GradCAM
from netreveal.model.hooks import capture
from netreveal.targets import Target

_GRADCAM = GradCAM()


def cam_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Signed Grad-CAM maps (B, h, w) from a layer's activation and gradient (B, K, h, w)."""
    return _GRADCAM.combine(activation, gradient)


# Grad-CAM heatmaps (B, H, W) at the input size for ``images`` (B, 3, H, W): the CAM template's
# ``explain`` with Grad-CAM's channel weights (see :meth:`netreveal.attribution.cam.CAM.explain`).
gradcam = _GRADCAM.explain


def gradcam_layers(
    model: nn.Module, images: torch.Tensor, layers: Sequence[str], target: Target = None
) -> dict[str, torch.Tensor]:
    """Grad-CAM at several layers from one forward/backward pass: ``{layer: signed raw map}``."""
    cap = capture(model, images, list(layers), target)
    return {name: cam_from(cap.activations[name], cap.gradients[name]) for name in layers}
