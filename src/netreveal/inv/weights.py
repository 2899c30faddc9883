"""Per-map weights (a guided Grad-CAM variant), the weak-map threshold and the light-cluster floor.

alpha_k = mean_ij( 1[A^k_ij > 0] * 1[dY/dA^k_ij > 0] * dY/dA^k_ij ),
w_k = 100 * alpha_k / sum_k alpha_k.

Tapping a convolution's output (before its ReLU) gives the same weights as tapping the ReLU's
output: where the pre-activation is positive the two activations and their gradients coincide,
elsewhere the indicator is zero in both cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from netreveal.errors import NetrevealError

Threshold = float | Callable[[int], float] | None

# (minimum layer width, threshold in percent); below the last bucket the threshold is 76.8 / n.
BUCKETS: tuple[tuple[int, float], ...] = ((512, 0.175), (256, 0.35), (128, 0.7), (64, 1.4))


def map_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Percent weights (B, C) of a layer's C maps from its activations and gradients (B, C, h, w).

    Each image's weights sum to 100; an image whose alphas are all zero (no map with positive
    activation and positive gradient at the same place) gets all-zero weights.
    """
    if activations.shape != gradients.shape or activations.dim() != 4:
        raise NetrevealError(
            f"activations {tuple(activations.shape)} and gradients {tuple(gradients.shape)} must "
            "both be (B, C, h, w)"
        )
    guided = torch.where(
        (activations > 0) & (gradients > 0), gradients, torch.zeros_like(gradients)
    )
    alpha = guided.float().mean(dim=(2, 3))
    total = alpha.sum(dim=1, keepdim=True)
    return torch.where(
        total > 0,
        100.0 * alpha / total.clamp_min(torch.finfo(alpha.dtype).tiny),
        torch.zeros_like(alpha),
    )


def prune_threshold(n_maps: int) -> float:
    """Default weak-map threshold d(n) in percent: 0.175 (n >= 512), 0.35 (>= 256), 0.7 (>= 128),
    1.4 (>= 64), else 76.8 / n. (These are 89.6 / n rounded to the layer-width bucket.)"""
    if n_maps < 1:
        raise NetrevealError(f"a layer needs at least one map, got {n_maps}")
    for width, value in BUCKETS:
        if n_maps >= width:
            return value
    return 76.8 / n_maps


def resolve_threshold(threshold: Threshold, n_maps: int) -> float:
    """The threshold for a layer of ``n_maps`` maps: None = :func:`prune_threshold`, a number, or
    a function of ``n_maps``."""
    if threshold is None:
        return prune_threshold(n_maps)
    value = threshold(n_maps) if callable(threshold) else threshold
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise NetrevealError(f"the map threshold must be a number, got {value!r}") from exc
    if math.isnan(value):
        raise NetrevealError("the map threshold is NaN")
    return value


def light_cluster_floor(cluster_weights: torch.Tensor) -> float:
    """The weight (percent) a cluster needs to be shown: max(heaviest / 3, mean / 2) over the k
    clusters of a layer; lighter clusters are dropped as weak."""
    cw = torch.as_tensor(cluster_weights, dtype=torch.float32)
    if cw.numel() == 0:
        return 0.0
    return max(float(cw.max()) / 3.0, float(cw.mean()) / 2.0)


LIGHT_CLUSTER_RULE = "weight below max(heaviest / 3, mean / 2) of the layer's clusters"


def describe_threshold(threshold: Threshold) -> str | float:
    """A saveable description of a threshold setting (for a result's params)."""
    if threshold is None:
        return "default"
    if callable(threshold):
        return f"callable:{getattr(threshold, '__qualname__', type(threshold).__name__)}"
    return float(threshold)


def kept_maps(weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean mask of the maps whose weight is above the threshold (strictly: w_k > d)."""
    return weights > threshold
