"""Structured Attention Graphs: several minimal sufficient explanations of one prediction.

A classifier often has more than one way to be confident about an image. A SAG finds patch sets
(on a ``grid x grid`` grid) that are each enough on their own: with only those patches pasted on
a black (or blurred) image the target probability stays above ``threshold`` times the full
image's, and no single patch can be dropped. It shows a diverse few of them as roots of a graph
whose children remove one patch at a time, labelled with the confidence that remains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.igos import igos
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.sag.graph import build_graph
from netreveal.sag.result import SagResult
from netreveal.sag.search import PatchScorer, beam_search, diverse_subset
from netreveal.targets import resolve_targets

SAG_BASELINES = ("black", "blur")
# a ranking of grid x grid patches needs a coarse map only: iGOS++ with a short optimisation
SALIENCY_DEFAULTS = {"method": "igos++", "iterations": 5, "ig_steps": 10}


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


def structured_attention_graph(
    model: nn.Module,
    image: torch.Tensor,
    target: int | None = None,
    *,
    grid: int = 7,
    baseline: str = "black",
    threshold: float = 0.9,
    beam_width: int = 5,
    successors: int = 15,
    max_roots: int = 10,
    max_shown: int = 3,
    max_overlap: int = 1,
    expand_above: float = 0.4,
    max_depth: int | None = None,
    patience: int | None = 3,
    salient_path: bool = True,
    max_nodes: int = 60,
    batch_size: int = 64,
    saliency: torch.Tensor | None = None,
    saliency_options: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SagResult:
    """Structured Attention Graph of ``image`` (3, H, W) for ``target`` (None = predicted class).

    - Patches: ``grid x grid``, index ``row * grid + col``. A patch set is *sufficient* when,
      pasted alone on the ``baseline`` ("black" | "blur"), it keeps the target probability
      >= ``threshold`` x the full-image probability.
    - Search: beam search from the empty set (``beam_width`` states, each extended by its
      ``successors`` most salient unused patches), every depth scored in batches of
      ``batch_size`` images; sufficient candidates are pruned to 1-minimal roots, up to
      ``max_roots``. ``salient_path`` also keeps the saliency map's own insertion path (its k most
      salient patches at depth k) in the beam, so the search does no worse than the map. The
      search stops at depth ``max_depth`` (default half the patches: a set covering more of the
      image is no explanation) or once ``patience`` consecutive depths after the first root found
      no new root (None: never).
    - Graph: at most ``max_shown`` roots, most probable first, pairwise sharing at most
      ``max_overlap`` patches; nodes above ``expand_above`` relative confidence get one child
      per patch (at most ``max_nodes`` nodes).
    - ``saliency``: a map ranking the patches (any 2-D size, averaged to the grid; higher = more
      salient). Default: iGOS++ at ``mask_size=grid`` on the same baseline with 5 iterations of
      10 path steps (a ranking needs no more); ``saliency_options`` overrides any argument of
      :func:`~netreveal.attribution.igos.igos`.
    """
    image = _one_image(image)
    if baseline not in SAG_BASELINES:
        raise NetrevealError(
            f"unknown SAG baseline {baseline!r}; choose one of {', '.join(SAG_BASELINES)}"
        )
    if grid < 1 or grid > min(image.shape[-2:]):
        raise NetrevealError(f"grid {grid} must be between 1 and the image size")
    if not 0 < threshold <= 1:
        raise NetrevealError(f"threshold must be in (0, 1], got {threshold}")
    if min(beam_width, successors, max_roots, max_shown, batch_size, max_nodes) < 1:
        raise NetrevealError(
            "beam_width, successors, max_roots, max_shown, max_nodes and batch_size must be >= 1"
        )
    device = model_device(model, image.device)
    image = image.to(device=device, dtype=torch.float32)
    base = make_baseline(image[None], baseline)[0]
    n_patches = grid * grid
    max_depth = (
        (n_patches + 1) // 2 if max_depth is None else max(1, min(int(max_depth), n_patches))
    )

    with frozen(model), torch.no_grad():
        logits = model(image[None])
    logits = logits.detach()
    cls = _target(target, logits)
    full_prob = float(logits.softmax(dim=1)[0, cls])

    saliency_passes = 0
    if saliency is None:
        options = {"mask_size": grid, "baseline": baseline, "batch_size": batch_size, "seed": seed}
        options.update(SALIENCY_DEFAULTS)
        options.update(saliency_options or {})
        result = igos(model, image[None], cls, **options)
        saliency = 1 - result.raw[0]
        saliency_passes = int(result.extras["model_inputs"])
    sal = _coarse(saliency, grid, device)
    ranking = sal.flatten().tolist()  # one read of the map, not one per patch
    order = sorted(range(n_patches), key=lambda p: -ranking[p])

    needed = threshold * full_prob
    scorer = PatchScorer(model, image, base, cls, grid, batch_size)
    with frozen(model):
        (baseline_prob,) = scorer.score([()])
        if baseline_prob >= needed:
            roots, depth, reason = [()], 0, "baseline_sufficient"
        else:
            with tqdm(
                total=max_depth, desc="SAG search", disable=not progress, unit="depth"
            ) as bar:
                roots, depth, reason = beam_search(
                    scorer,
                    order,
                    needed,
                    beam_width=beam_width,
                    successors=successors,
                    max_roots=max_roots,
                    max_depth=max_depth,
                    patience=patience,
                    salient_path=salient_path,
                    progress=bar,
                )
        root_probs = scorer.score(roots)
        shown = diverse_subset(roots, root_probs, max_shown, max_overlap)
        nodes, edges = build_graph(
            scorer, [roots[i] for i in shown if roots[i]], full_prob, expand_above, max_nodes
        )

    params = {
        "grid": grid,
        "baseline": baseline,
        "threshold": threshold,
        "beam_width": beam_width,
        "successors": successors,
        "max_roots": max_roots,
        "max_shown": max_shown,
        "max_overlap": max_overlap,
        "expand_above": expand_above,
        "max_depth": max_depth,
        "max_nodes": max_nodes,
        "batch_size": batch_size,
        "patience": patience,
        "salient_path": salient_path,
        "saliency": "igos++" if saliency_passes else "given",
        "saliency_options": {**SALIENCY_DEFAULTS, **(saliency_options or {})}
        if saliency_passes
        else None,
        "seed": seed,
    }
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
    )
