"""INV: for each of ``--layers`` (default ``auto:9``) the layer's feature maps weighted by a guided
Grad-CAM, clustered and merged into weighted cluster maps, shallow to deep. ``evaluate`` adds a
per-layer table: alignment of cluster maps with ground-truth parts, and each layer's combined map
against Grad-CAM at the same layer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from netreveal.csvtable import Table
from netreveal.methods.base import Evaluation, Method
from netreveal.methods.options import MethodOptions, layers_option, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter

if TYPE_CHECKING:
    from netreveal.inv.result import InvResult

MAX_BATCH = 8  # images per INV batch (each batch runs one batched t-SNE per layer)


@dataclasses.dataclass
class InvOptions(MethodOptions):
    layers: str = layers_option()
    inv_tsne: str = option("exact", "t-SNE of INV: exact (default; all sets of a batch at once, several times "
                           "faster) or reference (the INV notebook's scikit-learn Barnes-Hut t-SNE, one set at a time)",
                           choices=("exact", "reference"))


@register_method
class InvMethod(Method):
    name = "inv"
    title = "INV"
    Options = InvOptions

    def check(self, adapter: ModelAdapter, example: torch.Tensor, options: InvOptions) -> None:
        from netreveal.model.layers import check_feature_maps

        check_feature_maps(adapter.model, options.layers, example, "INV")

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, options: InvOptions) -> InvResult:
        from netreveal.inv import InvConfig, TsneConfig, explain_inv

        return explain_inv(adapter.model, images, options.layers, targets,
                           config=InvConfig(tsne=TsneConfig(method=options.inv_tsne)),
                           batch_size=min(options.batch_size, MAX_BATCH), seed=options.seed,
                           progress=options.progress)

    def batch_invariants(self, result) -> dict:
        """Everything before the clustering: which maps each layer keeps and their weights. The
        clusters and maps are not: a batched forward pass may round differently in the last bit for
        another batch size, and t-SNE amplifies that into another, equally good embedding."""
        layers = [[{"n_maps": layer.n_maps, "kept": layer.kept, "weights": layer.weights} for layer in image.layers]
                  for image in result.images]
        return {"targets": result.targets, "target_probs": result.target_probs, "layers": layers}

    def evaluation_values(self, evaluation: Evaluation, result, options: InvOptions) -> dict | None:
        from netreveal.metrics.inv_layers import inv_layer_values

        if not evaluation.inputs.part_masks:
            return None
        return inv_layer_values(evaluation.adapter, evaluation.inputs, result, steps=evaluation.steps,
                                baseline=evaluation.baseline, batch_size=evaluation.batch_size,
                                progress=evaluation.progress)

    def evaluation_tables(self, values: Sequence[dict], seconds: float, options: InvOptions) -> list[Table]:
        from netreveal.metrics.inv_layers import inv_layer_rows

        if not values:
            return []
        header, rows = inv_layer_rows(values)
        title = "INV per layer: cluster maps vs ground-truth parts (top 5% region), and combined map vs Grad-CAM"
        return [Table(title, header, rows, "inv-layers")]
