"""LIME (captum) on seeded SLIC superpixels: a weighted ridge regression on random on/off samples; a
switched-off superpixel shows the ``--baseline`` image (default) or its own mean colour
(``--lime-fill mean``, the lime package's default)."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import (
    MethodOptions,
    baseline_option,
    inference_option,
    option,
    samples_option,
    segments_option,
)
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class LimeOptions(MethodOptions):
    baseline: str = baseline_option()
    samples: int | None = samples_option()
    segments: int | None = segments_option()
    inference: str = inference_option()
    lime_fill: str = option("baseline", "what a switched-off LIME superpixel shows: baseline (the --baseline image, "
                            "default) or mean (its own mean colour, as the lime package)", choices=("baseline", "mean"))


@register_method
class LimeMethod(Method):
    name = "lime"
    title = "LIME"
    Options = LimeOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: LimeOptions) -> AttributionResult:
        from netreveal.attribution.captum_baselines import lime
        from netreveal.methods.inference import recorded, scorer

        model = scorer(adapter, images, options.inference)
        result = lime(model, images, targets, n_samples=options.samples, segments=options.segments,
                      seed=options.seed, baseline=options.baseline, fill=options.lime_fill,
                      batch_size=options.perturbed_batch, progress=options.progress)
        return recorded(result, options.inference)
