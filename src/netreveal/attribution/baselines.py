"""Baseline attribution methods through captum, returned as netreveal results.

Integrated gradients (Sundararajan et al. 2017) along the straight path from a baseline image to the
input; the heatmap is the per-pixel sum over colour channels of |attribution|, min-max normalised.
captum batches the path steps (``internal_batch_size``); we chunk images by ``batch_size``.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline, minmax
from netreveal.model.hooks import frozen
from netreveal.provenance import provenance
from netreveal.results import AttributionResult


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int = 50,
    baseline: str = "black",
    batch_size: int = 8,
    progress: bool = False,
) -> AttributionResult:
    """Integrated-gradients heatmaps (B, H, W) for class ``targets`` (B,) of ``images`` in [0, 1]."""
    from captum.attr import IntegratedGradients

    if steps < 1:
        raise NetrevealError("integrated gradients needs at least one step")
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if targets.numel() != images.shape[0]:
        raise NetrevealError(f"got {targets.numel()} targets for a batch of {images.shape[0]} images")
    raws, deltas, probs = [], [], []
    with frozen(model):
        ig = IntegratedGradients(model)
        for start in tqdm(range(0, len(images), batch_size), desc="integrated gradients", disable=not progress):
            x = images[start:start + batch_size]
            t = targets[start:start + batch_size]
            attr, delta = ig.attribute(x, baselines=make_baseline(x, baseline), target=t, n_steps=steps,
                                       internal_batch_size=max(batch_size * 4, 16), return_convergence_delta=True)
            raws.append(attr.detach())
            deltas.append(delta.detach())
            with torch.no_grad():
                probs.append(model(x).softmax(1).gather(1, t[:, None]).squeeze(1))
    raw = torch.cat(raws)
    return AttributionResult(
        method="ig",
        maps=minmax(raw.abs().sum(dim=1)),
        targets=targets,
        target_probs=torch.cat(probs),
        params={"steps": steps, "baseline": baseline, "map": "sum over channels of |attribution|, min-max"},
        provenance=provenance(),
        raw=raw,
        extras={"convergence_delta": torch.cat(deltas)},
    )
