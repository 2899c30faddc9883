"""RISE: random masks (4,000 by default), batched; the paper's black baseline."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class RiseOptions(MethodOptions):
    rise_masks: int = option(4000, "RISE random masks per image", minimum=1)


@register_method
class RiseMethod(Method):
    name = "rise"
    title = "RISE"
    Options = RiseOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: RiseOptions) -> AttributionResult:
        from netreveal.attribution.rise import rise

        return rise(adapter.model, images, targets, n_masks=options.rise_masks, seed=options.seed,
                    batch_size=options.perturbed_batch, progress=options.progress)
