"""Structured Attention Graphs: several minimal sufficient patch sets per image (``--grid`` 7) and
how confidence falls as patches are removed. ``evaluate`` adds how often a set was found and at
what cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from netreveal.csvtable import Table
from netreveal.methods.base import Evaluation, Method
from netreveal.methods.options import MethodOptions, baseline_option, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.sag.result import SagBatch


@dataclasses.dataclass
class SagOptions(MethodOptions):
    grid: int = option(7, "SAG patch grid side", minimum=1)
    baseline: str = baseline_option()
    sag_saliency_iterations: int = option(5, "iGOS++ iterations of the map that orders SAG's patches", minimum=1)
    sag_saliency_steps: int = option(10, "iGOS++ path steps of the map that orders SAG's patches", minimum=1)


@register_method
class SagMethod(Method):
    name = "sag"
    title = "Structured Attention Graph"
    Options = SagOptions
    heatmaps = None  # several explanations per image, no single map

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: SagOptions) -> SagBatch:
        from tqdm.auto import tqdm

        from netreveal.provenance import provenance
        from netreveal.sag import structured_attention_graph

        graphs = [
            structured_attention_graph(adapter.model, images[i], int(targets[i]), grid=options.grid,
                                       baseline=options.baseline, batch_size=options.perturbed_batch,
                                       seed=options.seed,
                                       saliency_options={"iterations": options.sag_saliency_iterations,
                                                         "ig_steps": options.sag_saliency_steps})
            for i in tqdm(range(len(images)), desc="SAG", unit="img", disable=not options.progress)
        ]
        params = {"grid": options.grid, "baseline": options.baseline,
                  "saliency": {"iterations": options.sag_saliency_iterations, "ig_steps": options.sag_saliency_steps}}
        return SagBatch(graphs=graphs, params=params, provenance=provenance(seed=options.seed, method="sag"))

    def batch_invariants(self, result: SagBatch) -> dict:
        return {"targets": result.targets, "target_probs": result.target_probs,
                "roots": [g.roots for g in result.graphs], "root_probs": [g.root_probs for g in result.graphs],
                "nodes": [[(n.patches, n.prob) for n in g.nodes] for g in result.graphs]}

    def evaluation_values(self, evaluation: Evaluation, result: SagBatch, options: SagOptions) -> dict:
        from netreveal.sag.statistics import sag_image_values

        return sag_image_values(result.graphs)

    def evaluation_tables(self, values: Sequence[dict], seconds: float, options: SagOptions) -> list[Table]:
        from netreveal.sag.statistics import sag_rows

        header, rows = sag_rows(values, seconds)
        title = f"Structured Attention Graphs ({options.grid}x{options.grid} patches, {options.baseline} baseline)"
        return [Table(title, header, rows, "sag")]
