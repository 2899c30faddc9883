"""XNN: a few x-features (concepts) that reconstruct the prediction, with heatmaps and top images
(``--xnn``; the demo model's XNN ships with the package)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from netreveal.errors import NetrevealError
from netreveal.methods.concept_head import ConceptHeadMethod
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter

if TYPE_CHECKING:
    from netreveal.concepts.xnn.explain import XNNExplanation


@dataclasses.dataclass
class XNNOptions(MethodOptions):
    xnn: str | None = option(None, "XNN file from 'netreveal train-head xnn' (demo: shipped)")


@register_method
class XNNMethod(ConceptHeadMethod):
    name = "xnn"
    title = "XNN"
    Options = XNNOptions
    kind = "xnn"
    file_option = "xnn"

    def run(
        self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, options: XNNOptions
    ) -> XNNExplanation:
        """x-features of ``images`` and their contributions to ``targets`` (the model's classes)."""
        from netreveal.concepts.selection import check_reads_layers
        from netreveal.concepts.xnn import explain_xnn

        xnn, origin = self.concept_model(adapter, options)
        check_reads_layers(adapter.model, [xnn.layer, xnn.map_layer], "XNN", origin)
        if xnn.num_classes != len(adapter.class_names):
            raise NetrevealError(
                f"the XNN explains {xnn.num_classes} classes but the model has "
                f"{len(adapter.class_names)} (trained on another model?)"
            )
        xnn = xnn.to(adapter.device)
        result = explain_xnn(xnn, adapter.model, images, targets, batch_size=options.batch_size,
                             progress=options.progress)
        result.extras.update({"xnn": origin})
        return result
