"""Structured Attention Graphs: several minimal sufficient patch sets per image (``--grid`` 7) and
how confidence falls as patches are removed, by the paper's reference rules (``--sag-variant``).
``evaluate`` adds how often a set was found and at what cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from netreveal.csvtable import Table
from netreveal.methods.base import Evaluation, Method
from netreveal.methods.options import MethodOptions, baseline_option, inference_option, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.sag.patches import INSERTIONS
from netreveal.sag.result import SagBatch
from netreveal.sag.variants import SAG_BASELINES, SELECTIONS, VARIANTS


@dataclasses.dataclass
class SagOptions(MethodOptions):
    grid: int = option(7, "SAG patch grid side", minimum=1)
    baseline: str = baseline_option()
    sag_variant: str = option("reference", "SAG rules: reference (the paper's reference code), reference-2020 "
                              "(its 2020 release) or netreveal (netreveal's own search)", choices=VARIANTS)
    sag_baseline: str | None = option(None, "SAG's 'nothing here' image (default: black for the reference "
                                      "variants, --baseline for netreveal)", choices=SAG_BASELINES)
    sag_patches: str | None = option(None, "how SAG pastes patches: soft (bilinear blobs, the reference's) or "
                                     "hard (squares; netreveal's default)", choices=INSERTIONS)
    sag_max_patches: int | None = option(None, "most patches in a SAG candidate set (default: reference every "
                                         "patch, reference-2020 4, netreveal half of them)", minimum=1)
    sag_beam_width: int | None = option(None, "SAG beam width (default: reference 3, netreveal 5)", minimum=1)
    sag_select: str | None = option(None, "how SAG picks the roots it draws: largest (reference), disparity "
                                    "(reference-2020) or probable (netreveal)", choices=SELECTIONS)
    sag_expand_above: float | None = option(None, "SAG expands a graph node whose confidence exceeds this "
                                            "(default 0.4)", minimum=0)
    sag_saliency_iterations: int | None = option(None, "iterations of the I-GOS map that orders SAG's patches "
                                                 "(default: reference 2, reference-2020 15, netreveal 5 of "
                                                 "iGOS++)", minimum=1)
    sag_saliency_steps: int | None = option(None, "path steps of the I-GOS map that orders SAG's patches "
                                            "(default: 20; netreveal 10)", minimum=1)
    inference: str = inference_option()


def sag_arguments(options: SagOptions) -> dict:
    """The keyword arguments of :func:`~netreveal.sag.structured_attention_graph` that ``options``
    ask for (None: the variant's own setting)."""
    baseline = options.sag_baseline
    if baseline is None and options.sag_variant == "netreveal":
        baseline = options.baseline
    saliency = {"iterations": options.sag_saliency_iterations, "ig_steps": options.sag_saliency_steps}
    return {"variant": options.sag_variant, "grid": options.grid, "baseline": baseline,
            "insertion": options.sag_patches, "max_patches": options.sag_max_patches,
            "beam_width": options.sag_beam_width, "select": options.sag_select,
            "expand_above": options.sag_expand_above, "batch_size": options.perturbed_batch,
            "seed": options.seed, "inference": options.inference,
            "saliency_options": {k: v for k, v in saliency.items() if v is not None}}


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

        arguments = sag_arguments(options)
        graphs = [
            structured_attention_graph(adapter.model, images[i], int(targets[i]), **arguments)
            for i in tqdm(range(len(images)), desc="SAG", unit="img", disable=not options.progress)
        ]
        params = dict(graphs[0].params) if graphs else {"variant": options.sag_variant, "grid": options.grid}
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
        from netreveal.sag.variants import variant_settings

        header, rows = sag_rows(values, seconds)
        preset, asked = variant_settings(options.sag_variant, options.grid), sag_arguments(options)
        insertion = asked["insertion"] or preset["insertion"]
        baseline = asked["baseline"] or preset["baseline"] or options.baseline
        title = (f"Structured Attention Graphs ({options.grid}x{options.grid} {insertion} patches, "
                 f"{baseline} baseline, {options.sag_variant} variant)")
        return [Table(title, header, rows, "sag")]
