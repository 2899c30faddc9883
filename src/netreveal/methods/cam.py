"""What the CAM methods share: the ``--layer`` option, the layer check, the run through the
:class:`~netreveal.attribution.cam.CAM` template, and maps from averaged raw maps (SmoothGrad).
A CAM method sets ``cam`` to an instance of its template variant."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from netreveal.attribution.cam import CAM
from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, layer_option
from netreveal.model.adapter import ModelAdapter
from netreveal.results import AttributionResult


@dataclasses.dataclass
class CAMOptions(MethodOptions):
    layer: str = layer_option()


class CAMMethod(Method):
    """Base of the CAM methods (not registered itself)."""

    Options = CAMOptions
    smoothable = True
    cam: ClassVar[CAM]

    def check(self, adapter: ModelAdapter, example: torch.Tensor, options: CAMOptions) -> None:
        from netreveal.model.layers import check_feature_maps

        check_feature_maps(adapter.model, options.layer, example, self.title, gradient=True)

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: CAMOptions) -> AttributionResult:
        return self.cam.explain(adapter.model, images, options.layer, targets, batch_size=options.batch_size,
                                progress=options.progress)

    def map_from_raw(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.cam.to_map(raw, size)
