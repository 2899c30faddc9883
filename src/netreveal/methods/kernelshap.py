"""KernelSHAP (captum) on seeded SLIC superpixels: Shapley values estimated from sampled coalitions."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import (
    MethodOptions,
    baseline_option,
    inference_option,
    samples_option,
    segments_option,
)
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class KernelShapOptions(MethodOptions):
    baseline: str = baseline_option()
    samples: int | None = samples_option()
    segments: int | None = segments_option()
    inference: str = inference_option()


@register_method
class KernelShapMethod(Method):
    name = "kernelshap"
    title = "KernelSHAP"
    Options = KernelShapOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: KernelShapOptions) -> AttributionResult:
        from netreveal.attribution.captum_baselines import kernel_shap
        from netreveal.methods.inference import recorded, scorer

        model = scorer(adapter, images, options.inference)
        result = kernel_shap(model, images, targets, n_samples=options.samples, segments=options.segments,
                             seed=options.seed, baseline=options.baseline, batch_size=options.perturbed_batch,
                             progress=options.progress)
        return recorded(result, options.inference)
