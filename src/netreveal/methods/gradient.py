"""The plain input gradient (Simonyan et al. 2014): how the class logit changes with each pixel.
The base SmoothGrad averages by default."""

from __future__ import annotations

import torch

from netreveal.methods.base import Method
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@register_method
class GradientMethod(Method):
    name = "gradient"
    title = "Gradient"
    smoothable = True

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, options) -> AttributionResult:
        from netreveal.attribution.gradient import input_gradient

        return input_gradient(adapter.model, images, targets, batch_size=options.batch_size,
                              progress=options.progress)

    def map_from_raw(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        from netreveal.attribution.baselines import map_from_attribution

        return map_from_attribution(raw)
