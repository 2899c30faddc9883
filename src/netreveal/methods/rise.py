"""RISE: random masks (4,000 by default), batched; the paper's black baseline."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, inference_option, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class RiseOptions(MethodOptions):
    rise_masks: int = option(4000, "RISE random masks per image", minimum=1)
    inference: str = inference_option()


@register_method
class RiseMethod(Method):
    name = "rise"
    title = "RISE"
    Options = RiseOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: RiseOptions) -> AttributionResult:
        from netreveal.attribution.rise import rise
        from netreveal.methods.inference import recorded, scorer

        model = scorer(adapter, images, options.inference)
        result = rise(model, images, targets, n_masks=options.rise_masks, seed=options.seed,
                      batch_size=options.perturbed_batch, progress=options.progress)
        return recorded(result, options.inference)
