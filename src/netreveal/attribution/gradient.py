"""The input gradient dS/dx of each image's class score S (Simonyan, Vedaldi and Zisserman 2014).

The heatmap is the per-pixel sum over colour channels of |gradient|, min-max normalised; ``raw``
keeps the signed gradient (B, 3, H, W) (what SmoothGrad averages).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.baselines import map_from_attribution
from netreveal.errors import NetrevealError
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, check_count, slice_targets, target_scores


def input_gradient(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    score: str = "logit",
    batch_size: int = 32,
    progress: bool = False,
) -> AttributionResult:
    """Gradient heatmaps (B, H, W) of ``images`` (B, 3, H, W) in [0, 1] for ``target`` (None: the
    predicted class, an int, one class per image, or a callable ``logits -> (B,) scores``);
    ``score`` is ``logit``, ``prob`` or ``log_prob``."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise NetrevealError(f"need images (B, 3, H, W), got shape {tuple(images.shape)}")
    check_count(target, len(images))
    images = images.to(model_device(model))
    raws, targets, probs = [], [], []
    with frozen(model):
        for start in tqdm(range(0, len(images), batch_size), desc="gradient", disable=not progress, unit="batch"):
            x = images[start:start + batch_size].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                logits = model(x)
                scores, idx = target_scores(logits, slice_targets(target, start, start + len(x)), score)
                (grad,) = torch.autograd.grad(scores.sum(), x)
            p = logits.detach().softmax(dim=1).gather(1, idx.clamp_min(0)[:, None]).squeeze(1)
            raws.append(grad.detach())
            targets.append(idx)
            probs.append(torch.where(idx >= 0, p, torch.full_like(p, float("nan"))))  # NaN: callable target
    raw = torch.cat(raws)
    return AttributionResult(
        method="gradient",
        maps=map_from_attribution(raw),
        targets=torch.cat(targets),
        target_probs=torch.cat(probs),
        params={"score": score, "map": "sum over channels of |gradient|, min-max"},
        provenance=provenance(),
        raw=raw,
    )
