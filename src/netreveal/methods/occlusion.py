"""Occlusion (captum): a window slides over the image showing the baseline (blur by default); a
pixel's score is the mean drop in the class probability over the windows covering it."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, baseline_option, inference_option, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class OcclusionOptions(MethodOptions):
    baseline: str = baseline_option()
    occlusion_window: int | None = option(None, "occlusion window side in pixels (default: an eighth of the "
                                          "image side)", minimum=1)
    occlusion_stride: int | None = option(None, "occlusion stride in pixels (default: half the window)", minimum=1)
    inference: str = inference_option()


@register_method
class OcclusionMethod(Method):
    name = "occlusion"
    title = "Occlusion"
    Options = OcclusionOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: OcclusionOptions) -> AttributionResult:
        from netreveal.attribution.captum_baselines import occlusion
        from netreveal.methods.inference import recorded, scorer

        model = scorer(adapter, images, options.inference)
        result = occlusion(model, images, targets, window=options.occlusion_window,
                           stride=options.occlusion_stride, baseline=options.baseline,
                           batch_size=options.perturbed_batch, progress=options.progress)
        return recorded(result, options.inference)
