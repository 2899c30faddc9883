"""I-GOS and iGOS++: optimised masks (``--mask-size`` 7, 14, 28, 224; sizes above the input side
mean full resolution), with their loss curves. ``evaluate`` runs them once per listed mask size.
``--igos-variant reference`` (default) runs the published code's loop, ``fast`` the same objective
with fewer model evaluations, ``netreveal`` this package's earlier one (see docs/methods/igos.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from netreveal.attribution.igos_variants import VARIANTS
from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class IgosOptions(MethodOptions):
    mask_size: int = option(28, "I-GOS/iGOS++ mask side (7, 14, 28, 224 = full)", minimum=1, sweep="size")
    igos_iterations: int = option(15, "I-GOS/iGOS++ optimisation iterations", minimum=1)
    igos_steps: int = option(20, "I-GOS/iGOS++ integrated-gradient path steps per iteration", minimum=1)
    igos_variant: str = option("reference", "I-GOS/iGOS++ loop: 'reference' (the authors' code), 'fast' (its "
                               "objective with fewer model evaluations: iGOS++ scores each step by the "
                               "next gradient pass; early stop) or 'netreveal' (this package's "
                               "earlier loop); see docs/methods/igos.md", choices=VARIANTS)


class _Igos(Method):
    Options = IgosOptions

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: IgosOptions) -> AttributionResult:
        from netreveal.attribution.igos import igos

        side = min(options.mask_size, *images.shape[-2:])  # "224" means full resolution on smaller inputs
        return igos(adapter.model, images, targets, method=self.name, variant=options.igos_variant,
                    mask_size=side, iterations=options.igos_iterations, ig_steps=options.igos_steps,
                    batch_size=options.perturbed_batch, seed=options.seed, progress=options.progress)

    def ranking_maps(self, result: AttributionResult) -> torch.Tensor:
        """The optimised mask's cells (1 - M, B x h x w), as the I-GOS papers rank them: a coarse
        mask upsampled has ties and smooth ramps that a per-pixel order would split."""
        return 1 - result.raw

    def variant(self, options: IgosOptions, field: str, value: Any,
                image_size: tuple[int, int]) -> tuple[str, IgosOptions]:
        """One run per mask size: ``igos++ 7x7``; sizes above the input side become ``... (full)``."""
        side = min(int(value), *image_size)
        label = f"{self.name} {side}x{side}" + (" (full)" if side == min(image_size) else "")
        return label, dataclasses.replace(options, mask_size=side)


@register_method
class IgosMethod(_Igos):
    name = "igos"
    title = "I-GOS"


@register_method
class IgosPlusPlusMethod(_Igos):
    name = "igos++"
    title = "iGOS++"
