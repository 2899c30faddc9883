"""Ward clustering of each point set for every k of a range, and the k with the best silhouette.

Ward linkage is scipy's (the same routine scikit-learn's ``AgglomerativeClustering(linkage="ward")``
calls) and the cut into k clusters is scipy's ``cut_tree``: the first n - k merges applied, as
scikit-learn does. Silhouettes are computed for all sets and all k at once in torch (Euclidean
distances, a point alone in its cluster scores 0, as in ``sklearn.metrics.silhouette_score``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.cluster.hierarchy import cut_tree, linkage


def valid_ks(n_points: int, k_range: tuple[int, int]) -> list[int]:
    """The k of ``k_range`` (inclusive) a silhouette is defined for: 2 <= k <= n_points - 1."""
    lo, hi = k_range
    return [k for k in range(max(lo, 2), hi + 1) if k <= n_points - 1]


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, ... in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse]


def ward_labels(points: torch.Tensor, ks: Sequence[int]) -> torch.Tensor:
    """Ward cuts of (n, d) points into each k of ``ks``: labels (len(ks), n), clusters numbered in
    order of their first point.

    The cut into k clusters is the state after the first n - k merges of the Ward tree.
    """
    x = points.detach().to("cpu", torch.float64).numpy()
    if not len(ks):
        return torch.zeros(0, x.shape[0], dtype=torch.int64)
    cuts = cut_tree(linkage(x, method="ward", metric="euclidean"), n_clusters=list(ks))
    return torch.from_numpy(np.stack([_first_seen(labels) for labels in cuts.T]).astype(np.int64))


def silhouettes(
    points: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Mean silhouettes (K_i,) of the labellings ``labels[i]`` (K_i, n_i) of ``points[i]`` (n_i, d),
    with Euclidean distances.

    All sets are padded into one batch; padded points belong to no cluster and are not averaged.
    """
    if not points:
        return []
    device = points[0].device
    sizes = [int(p.shape[0]) for p in points]
    counts_k = [int(lab.shape[0]) for lab in labels]
    b, m, kk = len(points), max(sizes), max(counts_k)
    # distances per set (the points may be wide, e.g. whole maps), then one padded batch
    dist = torch.zeros(b, m, m, dtype=torch.float64, device=device)
    padded = torch.full((b, kk, m), -1, dtype=torch.long, device=device)
    for i, (p, lab) in enumerate(zip(points, labels)):
        x = p.to(device=device, dtype=torch.float64)
        sq = (x * x).sum(dim=-1)
        dist[i, : sizes[i], : sizes[i]] = (
            (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0).sqrt()
        )
        padded[i, : lab.shape[0], : sizes[i]] = lab.to(device)
    mean = mean_silhouettes(dist, padded)
    return [mean[i, : counts_k[i]].cpu() for i in range(b)]


def mean_silhouettes(dist: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean silhouettes (B, K) of K labellings ``labels`` (B, K, M) of each of B point sets given
    their distances ``dist`` (B, M, M).

    A point labelled -1 is padding: no cluster's member, not averaged (a labelling that is all
    padding scores 0). A point alone in its cluster scores 0, as in
    ``sklearn.metrics.silhouette_score``.
    """
    # Not sklearn.metrics.silhouette_score: INV scores every k of every (image, layer) set of a
    # batch and label clustering every k of every cluster map, and one batched pass costs far
    # less than a library call per set and k (its input checks dominate on sets this small):
    # INV, 72 sets of 40-300 points, k = 3..8, one thread: 0.20 s against 0.89 s CPU.
    b, kk, m = labels.shape
    dist = dist.to(torch.float64)
    member = labels >= 0  # (b, kk, m)
    ncl = int(labels.max()) + 1 if labels.numel() and bool(member.any()) else 1
    onehot = torch.nn.functional.one_hot(labels.clamp_min(0), ncl).to(torch.float64)
    onehot = onehot * member[..., None]  # (b, kk, m, ncl)
    real = member.any(dim=1)  # (b, m) points some labelling uses
    dist = dist * (real[:, :, None] & real[:, None, :])
    dist.diagonal(dim1=1, dim2=2).zero_()
    # summed distance of every point to every cluster of every labelling: (b, m, kk, ncl)
    sums = torch.bmm(dist, onehot.permute(0, 2, 1, 3).reshape(b, m, kk * ncl)).view(b, m, kk, ncl)
    size = onehot.sum(dim=2)  # (b, kk, ncl)
    own = onehot.permute(0, 2, 1, 3)  # (b, m, kk, ncl)
    own_size = (own * size[:, None]).sum(dim=-1)  # (b, m, kk)
    intra = (own * sums).sum(dim=-1) / (own_size - 1.0).clamp_min(1.0)
    mean_to = sums / size[:, None].clamp_min(1.0)
    other = torch.where(
        (own > 0) | (size[:, None] == 0), torch.full_like(mean_to, float("inf")), mean_to
    )
    nearest = other.min(dim=-1).values
    denom = torch.maximum(intra, nearest)
    s = torch.where(
        (own_size > 1) & (denom > 0) & torch.isfinite(nearest),
        (nearest - intra) / denom,
        torch.zeros_like(intra),
    )  # (b, m, kk); 0 for padding (own_size 0)
    counted = member.permute(0, 2, 1).sum(dim=1).clamp_min(1)  # (b, kk)
    return s.sum(dim=1) / counted
