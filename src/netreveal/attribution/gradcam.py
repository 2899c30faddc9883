"""Grad-CAM, batched, all in torch.

map_i = sum_k alpha_k A^k with alpha_k = mean_xy d y_c / d A^k_xy, for each image i and its target c.
The backward pass stops at the tapped layer (see ``netreveal.model.hooks``), so the cost is one
forward plus the backward of the layers above the tapped one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.model.hooks import capture
from netreveal.model.layers import resolve_layers
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, slice_targets


def cam_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Signed Grad-CAM maps (B, h, w) from a layer's activation and gradient (B, K, h, w)."""
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return (weights * activation).sum(dim=1)


def gradcam(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | nn.Module,
    target: Target = None,
    *,
    relu: bool = True,
    normalize: bool = True,
    batch_size: int = 32,
    call: int = -1,
    progress: bool = False,
) -> AttributionResult:
    """Grad-CAM heatmaps (B, H, W) at the input size for ``images`` (B, 3, H, W).

    ``relu`` keeps positive evidence only; ``normalize`` scales each map to [0, 1]. With both off
    the signed map is returned as computed. ``raw`` holds the maps at the layer's resolution.
    """
    if isinstance(target, (list, tuple, torch.Tensor)) and len(target) != images.shape[0]:
        raise NetrevealError(f"got {len(target)} targets for a batch of {images.shape[0]} images")
    if images.shape[0] == 0:
        raise NetrevealError("no image given")
    ((layer_name, module),) = resolve_layers(model, layer, example=images[:1])
    raws, targets, probs = [], [], []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc="Grad-CAM", disable=not progress, unit="batch"):
        stop = min(start + batch_size, images.shape[0])
        cap = capture(model, images[start:stop], module, slice_targets(target, start, stop), call=call)
        (act,), (grad,) = cap.activations.values(), cap.gradients.values()
        raws.append(cam_from(act, grad))
        targets.append(cap.targets)
        p = cap.logits.softmax(dim=1)
        prob = p.gather(1, cap.targets.clamp_min(0)[:, None]).squeeze(1)
        probs.append(torch.where(cap.targets >= 0, prob, torch.full_like(prob, float("nan"))))  # NaN: callable target
    raw = torch.cat(raws)
    maps = upsample(raw, tuple(images.shape[-2:]))
    if relu:
        maps = maps.clamp_min(0)
    if normalize:
        maps = minmax(maps)
    params = {"layer": layer_name, "relu": relu, "normalize": normalize, "call": call, "score": "logit"}
    return AttributionResult(
        method="gradcam",
        maps=maps,
        targets=torch.cat(targets),
        target_probs=torch.cat(probs),
        params=params,
        provenance=provenance(),
        raw=raw,
    )


def gradcam_layers(model: nn.Module, images: torch.Tensor, layers: Sequence[str], target: Target = None):
    """Grad-CAM at several layers from one forward/backward pass: ``{layer: signed raw map}``."""
    cap = capture(model, images, list(layers), target)
    return {name: cam_from(cap.activations[name], cap.gradients[name]) for name in layers}
