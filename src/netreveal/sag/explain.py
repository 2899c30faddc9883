"""Structured Attention Graphs: several minimal sufficient explanations of one prediction.

A classifier often has more than one way to be confident about an image. A SAG finds patch sets
(on a ``grid x grid`` grid) that are each enough on their own: with only those patches pasted on
a black (or blurred) image the target probability stays above a threshold, and no single patch
can be dropped. It draws a few of them as roots of a graph whose children remove one patch at a
time, labelled with the confidence that remains.

By default every rule follows the paper's reference code (``variant="reference"``); see
:mod:`netreveal.sag.variants` for the presets and docs/methods/sag.md for the differences.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.igos import igos
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.model.hooks import frozen, model_device
from netreveal.model.onnx_runtime import scoring_model
from netreveal.provenance import provenance
from netreveal.sag.graph import build_graph, build_tree
from netreveal.sag.patches import PatchScorer, PatchSet
from netreveal.sag.reference import (
    combination_search,
    disparity_order,
    largest_compatible,
    prune_raster,
    reference_beam_search,
)
from netreveal.sag.result import SagResult
from netreveal.sag.search import beam_search, diverse_subset, prune_to_minimal
from netreveal.sag.variants import SAG_BASELINES, resolve_settings
from netreveal.targets import resolve_targets

__all__ = ["SAG_BASELINES", "structured_attention_graph"]


def _one_image(image: torch.Tensor) -> torch.Tensor:
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise NetrevealError(f"SAG explains one image (C, H, W), got shape {tuple(image.shape)}")
    return image


def _target(target, logits: torch.Tensor) -> int:
    if callable(target) and not isinstance(target, torch.Tensor):
        raise NetrevealError("SAG needs a class index as target, not a callable")
    if isinstance(target, torch.Tensor) and target.numel() == 1:
        target = int(target.reshape(-1)[0])
    return int(resolve_targets(target, logits)[0])


def _coarse(saliency: torch.Tensor, grid: int, device) -> torch.Tensor:
    sal = torch.as_tensor(saliency, dtype=torch.float32, device=device)
    while sal.dim() > 2 and sal.shape[0] == 1:
        sal = sal[0]
    if sal.dim() != 2:
        raise NetrevealError(f"saliency must be a 2-D map, got shape {tuple(sal.shape)}")
    if tuple(sal.shape) != (grid, grid):
        sal = F.adaptive_avg_pool2d(sal[None, None], grid)[0, 0]
    return sal


def _search(scorer: PatchScorer, order: list[int], needed: float, s: dict[str, Any],
            patience: int | None, salient_path: bool, progress: bool
            ) -> tuple[list[PatchSet], list[float] | None, int, str]:
    """(roots, the 2020 search's candidate probabilities or None, depth, stop reason)."""
    prune = prune_raster if s["prune"] == "raster" else prune_to_minimal
    if s["search"] == "combinations":
        return combination_search(scorer, order, needed, top_patches=s["top_patches"],
                                  max_patches=s["max_patches"], prune=prune)
    with tqdm(total=s["max_patches"], desc="SAG search", disable=not progress, unit="depth") as bar:
        if s["search"] == "beam":
            roots, depth, reason = reference_beam_search(
                scorer, order, needed, beam_width=s["beam_width"], successors=s["successors"],
                max_roots=s["max_roots"], max_patches=s["max_patches"], prune=prune, patience=patience,
                progress=bar)
        else:
            roots, depth, reason = beam_search(
                scorer, order, needed, beam_width=s["beam_width"], successors=s["successors"],
                max_roots=s["max_roots"], max_depth=s["max_patches"], patience=patience,
                salient_path=salient_path, prune=prune, progress=bar)
    return roots, None, depth, reason


def _shown(roots: list[PatchSet], root_probs: list[float], first_probs: list[float] | None,
           s: dict[str, Any]) -> list[int]:
    if s["select"] == "largest":
        return largest_compatible(roots, s["max_overlap"])[: s["max_shown"]]
    if s["select"] == "disparity":
        return disparity_order(roots, first_probs or root_probs)[: s["max_shown"]]
    return diverse_subset(roots, root_probs, s["max_shown"], s["max_overlap"])


def structured_attention_graph(
    model: nn.Module,
    image: torch.Tensor,
    target: int | None = None,
    *,
    variant: str = "reference",
    grid: int = 7,
    baseline: str | None = None,
    insertion: str | None = None,
    search: str | None = None,
    threshold: float | None = None,
    threshold_scale: str | None = None,
    beam_width: int | None = None,
    successors: int | None = None,
    max_roots: int | None = None,
    max_patches: int | None = None,
    top_patches: int | None = None,
    prune: str | None = None,
    select: str | None = None,
    max_shown: int | None = None,
    max_overlap: int | None = None,
    graph: str | None = None,
    expand_above: float | None = None,
    expand_scale: str | None = None,
    expand_first: int | None = None,
    max_nodes: int | None = None,
    max_depth: int | None = None,
    patience: int | None | str = "variant",
    salient_path: bool = True,
    batch_size: int = 64,
    channels_last: bool | None = None,
    inference: str = "torch",
    saliency: torch.Tensor | None = None,
    saliency_options: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SagResult:
    """Structured Attention Graph of ``image`` (3, H, W) for ``target`` (None = predicted class).

    ``variant`` ("reference" | "reference-2020" | "netreveal", see
    :mod:`netreveal.sag.variants`) presets every setting left at None:

    - Patches: ``grid x grid``, index ``row * grid + col``, pasted on the ``baseline`` ("black" |
      "blur") through ``insertion`` masks ("soft": bilinear upsampling of the 0/1 cell grid, as
      the reference; "hard": squares). A set is *sufficient* when its probability is above
      ``threshold`` x the full image's (``threshold_scale="relative"``) or above ``threshold``
      itself ("absolute").
    - ``search``: "beam" (the reference's beam search: ``beam_width``, ``successors`` most salient
      unused patches per state, stop after more than ``max_roots`` roots or ``max_patches``
      depths), "combinations" (every ``max_patches``-subset of the ``top_patches`` most salient
      patches) or "netreveal" (netreveal's beam: stops at ``max_roots`` roots, ``max_patches``
      depths (``max_depth`` is its older name) or ``patience`` depths without a new root; with
      ``salient_path`` it keeps the saliency map's own insertion path in the beam).
      ``patience`` ("variant": 3 for the "netreveal" search, None (off) otherwise): also stop either beam
      search once that many consecutive depths after the first root brought no new root (for
      "beam" this departs from the reference code; see docs/methods/sag.md).
    - ``prune``: "raster" (drop patches in index order while sufficient, as the reference) or
      "best" (drop the patch that keeps the highest probability).
    - ``select`` the roots the graph is drawn from, at most ``max_shown``: "largest" (largest set
      pairwise sharing at most ``max_overlap`` patches), "disparity" (the 2020 release's least
      overlap order) or "probable" (most probable first, overlap at most ``max_overlap``).
    - ``graph``: "tree" (the reference's: duplicates drawn again, expansion on the printed
      percentage) or "dag" (merged); a node is expanded above ``expand_above`` (of its relative
      confidence or, ``expand_scale="absolute"``, its probability) by removing each of its first
      ``expand_first`` patches (0: all); at most ``max_nodes`` nodes.
    - ``saliency``: a map ranking the patches (any 2-D size, averaged to the grid; higher = more
      salient). Default: :func:`~netreveal.attribution.igos.igos` at ``mask_size=grid`` on the
      same baseline with the variant's options (the reference's I-GOS call, or iGOS++ for
      "netreveal"), ``saliency_options`` overriding any of them.

    - Scoring: patch sets in batches of ``batch_size``, each distinct set once
      (``result.forward_passes``; ``result.requested_sets`` counts repeats too, as the reference
      code scores them). ``channels_last`` feeds the model channels-last batches; None (default):
      only when that gives bit-identical probabilities (see :class:`~netreveal.sag.patches.PatchScorer`).
      ``inference="onnxruntime"`` scores the patch sets with the model's ONNX Runtime twin
      (:mod:`netreveal.model.onnx_runtime`; CPU, scores within float rounding of PyTorch's); the
      I-GOS map and the full image's probability still use ``model``.

    ``result.params`` records every setting used.
    """
    image = _one_image(image)
    if patience != "variant" and patience is not None and (isinstance(patience, str) or patience < 0):
        raise NetrevealError(f"patience must be a count of depths >= 0 or None, got {patience!r}")
    if grid < 1 or grid > min(image.shape[-2:]):
        raise NetrevealError(f"grid {grid} must be between 1 and the image size")
    if batch_size < 1:
        raise NetrevealError("batch_size must be >= 1")
    overrides = {
        "baseline": baseline, "insertion": insertion, "search": search, "threshold": threshold,
        "threshold_scale": threshold_scale, "beam_width": beam_width, "successors": successors,
        "max_roots": max_roots, "max_patches": max_patches if max_patches is not None else max_depth,
        "top_patches": top_patches, "prune": prune, "select": select, "max_shown": max_shown,
        "max_overlap": max_overlap, "graph": graph, "expand_above": expand_above,
        "expand_scale": expand_scale, "expand_first": expand_first, "max_nodes": max_nodes,
    }
    s = resolve_settings(variant, grid, overrides)
    if patience == "variant":
        patience = 3 if s["search"] == "netreveal" else None
    device = model_device(model, image.device)
    image = image.to(device=device, dtype=torch.float32)
    base = make_baseline(image[None], s["baseline"])[0]

    with frozen(model), torch.no_grad():
        logits = model(image[None]).detach()
    cls = _target(target, logits)
    full_prob = float(logits.softmax(dim=1)[0, cls])

    saliency_passes = 0
    if saliency is None:
        options = {"mask_size": grid, "baseline": s["baseline"], "batch_size": batch_size,
                   "seed": seed, **s["saliency"], **(saliency_options or {})}
        result = igos(model, image[None], cls, **options)
        saliency = 1 - result.raw[0]
        saliency_passes = int(result.extras["model_inputs"])
        s["saliency"] = options
    else:
        s["saliency"] = None
    sal = _coarse(saliency, grid, device)
    ranking = sal.flatten().tolist()  # one read of the map, not one per patch
    order = sorted(range(grid * grid), key=lambda p: -ranking[p])

    needed = s["threshold"] * (full_prob if s["threshold_scale"] == "relative" else 1.0)
    scoring = scoring_model(model, image[None], inference)
    scorer = PatchScorer(scoring, image, base, cls, grid, batch_size, s["insertion"], channels_last)
    with frozen(model):
        (baseline_prob,) = scorer.score([()])
        if baseline_prob > needed:
            roots, first_probs, depth, reason = [()], None, 0, "baseline_sufficient"
        else:
            roots, first_probs, depth, reason = _search(
                scorer, order, needed, s, patience, salient_path, progress)
        root_probs = scorer.score(roots)
        shown = _shown(roots, root_probs, first_probs, s)
        drawn = [roots[i] for i in shown if roots[i]]
        absolute = s["expand_scale"] == "absolute"
        if s["graph"] == "tree":
            nodes, edges, cut = build_tree(scorer, drawn, full_prob, s["expand_above"],
                                           absolute=absolute, first=s["expand_first"],
                                           max_nodes=s["max_nodes"])
        else:
            nodes, edges, cut = build_graph(scorer, drawn, full_prob, s["expand_above"],
                                            s["max_nodes"], absolute=absolute, first=s["expand_first"])

    saliency_options = s.pop("saliency")
    params = {
        "variant": variant, "grid": grid, **s, "batch_size": batch_size, "inference": inference,
        "saliency": saliency_options["method"] if saliency_options else "given",
        "saliency_options": saliency_options, "seed": seed,
    }
    if s["search"] == "netreveal":
        params.update(patience=patience, salient_path=salient_path)
    elif s["search"] == "beam" and patience is not None:
        params.update(patience=patience)
    return SagResult(
        target=cls,
        full_prob=full_prob,
        baseline_prob=float(baseline_prob),
        grid=grid,
        image_size=list(image.shape[-2:]),
        roots=[list(r) for r in roots],
        root_probs=[float(p) for p in root_probs],
        shown=shown,
        nodes=nodes,
        edges=edges,
        saliency=sal.detach(),
        forward_passes=scorer.forward_passes,
        saliency_forward_passes=saliency_passes,
        depth=depth,
        stop_reason=reason,
        params=params,
        provenance=provenance(seed=seed),
        graph_truncated=cut,
        requested_sets=scorer.requests,
    )
