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
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, check_count, class_indices, slice_targets


def map_from_attribution(raw: torch.Tensor) -> torch.Tensor:
    """Heatmaps (B, H, W): the sum over colour channels of |attribution| (B, 3, H, W), min-max."""
    return minmax(raw.abs().sum(dim=1))


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    steps: int = 50,
    baseline: str = "black",
    batch_size: int = 8,
    progress: bool = False,
) -> AttributionResult:
    """Integrated-gradients heatmaps (B, H, W) of ``images`` in [0, 1] for ``target`` (None: the
    predicted class, an int for all, or one class per image)."""
    from captum.attr import IntegratedGradients

    if steps < 1:
        raise NetrevealError("integrated gradients needs at least one step")
    check_count(target, len(images))
    images = images.to(model_device(model))
    raws, deltas, probs, targets = [], [], [], []
    with frozen(model):
        ig = IntegratedGradients(model)
        for start in tqdm(range(0, len(images), batch_size), desc="integrated gradients", disable=not progress):
            x = images[start:start + batch_size]
            with torch.no_grad():
                logits = model(x)
            t = class_indices(slice_targets(target, start, start + len(x)), logits, "integrated gradients")
            # one image: its class as an int, which captum would otherwise read from the device
            # in every internal batch of path steps that holds a single input
            attr, delta = ig.attribute(x, baselines=make_baseline(x, baseline), target=int(t) if len(x) == 1 else t,
                                       n_steps=steps, internal_batch_size=max(batch_size * 4, 16),
                                       return_convergence_delta=True)
            raws.append(attr.detach())
            deltas.append(delta.detach())
            targets.append(t)
            probs.append(logits.softmax(1).gather(1, t[:, None]).squeeze(1))
    raw = torch.cat(raws)
    return AttributionResult(
        method="ig",
        maps=map_from_attribution(raw),
        targets=torch.cat(targets),
        target_probs=torch.cat(probs),
        params={"steps": steps, "baseline": baseline, "map": "sum over channels of |attribution|, min-max"},
        provenance=provenance(),
        raw=raw,
        extras={"convergence_delta": torch.cat(deltas)},
    )
