"""Integrated gradients (captum's Gauss-Legendre rule), black baseline: a reference point for comparisons."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class IGOptions(MethodOptions):
    ig_steps: int = option(50, "path steps of integrated gradients", minimum=1)


@register_method
class IntegratedGradientsMethod(Method):
    name = "ig"
    title = "Integrated gradients"
    Options = IGOptions
    smoothable = True

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: IGOptions) -> AttributionResult:
        from netreveal.attribution.baselines import integrated_gradients

        return integrated_gradients(adapter.model, images, targets, steps=options.ig_steps,
                                    batch_size=options.batch_size, progress=options.progress)

    def map_from_raw(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        from netreveal.attribution.baselines import map_from_attribution

        return map_from_attribution(raw)
