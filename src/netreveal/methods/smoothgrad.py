"""SmoothGrad over any method with a raw attribution (``--smooth-base``: the methods that declare
``smoothable``, such as ``gradient``, ``ig`` and the CAMs): the mean over noisy copies of each image."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from netreveal.errors import NetrevealError
from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import METHODS, register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class SmoothGradOptions(MethodOptions):
    smooth_base: str = option("gradient", "method SmoothGrad averages over noisy copies: any gradient method "
                              "(gradient, ig, the CAMs)")
    smooth_samples: int = option(25, "noisy copies per image for SmoothGrad", minimum=1)
    smooth_noise: float = option(0.15, "SmoothGrad noise sd as a share of each image's value range", minimum=0)
    base_options: MethodOptions | None = option(  # noqa: RUF009 (option() returns a dataclasses.field)
        None, "options of the base method (default: from the same settings)", cli=False)


def smoothable_names() -> list[str]:
    return [name for name, method in METHODS.items() if method.smoothable]


@register_method
class SmoothGradMethod(Method):
    name = "smoothgrad"
    title = "SmoothGrad"
    Options = SmoothGradOptions

    def base(self, options: SmoothGradOptions) -> Method:
        method = METHODS.get(options.smooth_base)
        if method is None or not method.smoothable:
            raise NetrevealError(f"--smooth-base must be one of {', '.join(smoothable_names())}, "
                                 f"got {options.smooth_base!r}")
        return method

    def options(self, values: Mapping[str, Any] | None = None, **overrides: Any) -> SmoothGradOptions:
        """SmoothGrad's options; the base method's options come from the same settings unless given."""
        options = super().options(values, **overrides)
        if options.base_options is None:
            base = self.base(options)
            options = dataclasses.replace(options, base_options=base.options({**(values or {}), **overrides}))
        return options

    def check(self, adapter: ModelAdapter, example: torch.Tensor, options: SmoothGradOptions) -> None:
        base = self.base(options)
        base.check(adapter, example, self._base_options(base, options))

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: SmoothGradOptions) -> AttributionResult:
        from netreveal.attribution.smoothgrad import smoothgrad

        base = self.base(options)
        inner = dataclasses.replace(self._base_options(base, options), progress=False)
        size = tuple(images.shape[-2:])
        return smoothgrad(adapter.model, images, lambda x, t: base.run(adapter, x, t, inner),
                          lambda raw: base.map_from_raw(raw, size), targets, samples=options.smooth_samples,
                          noise=options.smooth_noise, seed=options.seed, base=base.name,
                          batch_size=options.batch_size, progress=options.progress)

    @staticmethod
    def _base_options(base: Method, options: SmoothGradOptions) -> MethodOptions:
        if isinstance(options.base_options, base.Options):
            return options.base_options
        return base.options({f.name: getattr(options, f.name) for f in dataclasses.fields(MethodOptions)})
