"""From kept feature maps to points: min-max normalised flat maps, their PCA scores.

PCA is exact (eigendecomposition of the smaller of the centred Gram and covariance matrices, in
float64) with scikit-learn's sign convention (each component's largest loading positive); scores
are returned in float32, as scikit-learn returns them for float32 data.
"""

from __future__ import annotations

import torch

from netreveal.imaging import minmax

REDUCERS = ("tsne", "pca", "none")
# total variance per point below which a point set counts as a single repeated point
DEGENERATE_VARIANCE = 1e-10


def normalised_points(maps: torch.Tensor) -> torch.Tensor:
    """Flatten maps (n, h, w) to points (n, h*w), each min-max scaled to [0, 1] (constant: 0)."""
    return minmax(maps.float()).flatten(1)


def total_variance(points: torch.Tensor) -> float:
    """Mean squared distance of the points to their centroid (0 for a repeated point)."""
    x = points.to(torch.float64)
    return float((x - x.mean(dim=0, keepdim=True)).square().sum(dim=1).mean())


def is_degenerate(points: torch.Tensor) -> bool:
    """True when the points are (numerically) all the same point."""
    return points.shape[0] < 2 or total_variance(points) <= DEGENERATE_VARIANCE


def pca_scores(points: torch.Tensor, n_components: int) -> torch.Tensor:
    """Scores (n, k) of (n, d) points on their first ``k = min(n_components, n, d)`` principal
    components."""
    n, d = points.shape
    k = max(0, min(int(n_components), n, d))
    x = points.to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)
    if k == 0:
        return torch.zeros(n, 0, dtype=torch.float32, device=points.device)
    if n <= d:
        evals, evecs = torch.linalg.eigh(x @ x.T)  # ascending
        evals, u = evals.flip(0)[:k].clamp_min(0.0), evecs.flip(1)[:, :k]
        s = evals.sqrt()
        scores = u * s
        loadings = x.T @ u  # (d, k), each column s_k times the unit component
    else:
        evals, evecs = torch.linalg.eigh(x.T @ x)
        loadings = evecs.flip(1)[:, :k]
        scores = x @ loadings
    pick = loadings.abs().argmax(dim=0)
    sign = torch.sign(loadings.gather(0, pick[None, :]).squeeze(0))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return (scores * sign).to(torch.float32)
