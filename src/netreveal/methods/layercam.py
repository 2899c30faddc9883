"""LayerCAM (Jiang et al., IEEE TIP 2021) at ``--layer``: each position of each channel is weighed
by its own positive gradient, so the map keeps the layer's fine detail (useful at shallow layers):

    map = ReLU(sum_k ReLU(g_k) * A_k),   g = dS/dA of the class logit S
"""

from __future__ import annotations

from typing import ClassVar

import torch

from netreveal.attribution.cam import CAM
from netreveal.methods.cam import CAMMethod
from netreveal.methods.registry import register_method


class LayerCAM(CAM):
    name = "layercam"
    params: ClassVar[dict] = {"weights": "ReLU(g) per position"}

    def weights(self, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.clamp_min(0)


@register_method
class LayerCAMMethod(CAMMethod):
    name = "layercam"
    title = "LayerCAM"
    cam = LayerCAM()
