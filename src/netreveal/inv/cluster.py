"""Ward clustering of each point set for every k of a range, and the k with the best silhouette.

Ward linkage is scipy's (the same routine scikit-learn's ``AgglomerativeClustering(linkage="ward")``
calls); a cut into k clusters undoes the last k - 1 merges, as scikit-learn does. Silhouettes are
computed for all sets and all k at once in torch (Euclidean distances, a point alone in its cluster
scores 0, as in ``sklearn.metrics.silhouette_score``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.cluster.hierarchy import linkage


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
    n = x.shape[0]
    tree = linkage(x, method="ward", metric="euclidean")
    wanted = {n - int(k): j for j, k in enumerate(ks)}
    out = np.zeros((len(ks), n), dtype=np.int64)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    for step in range(n - 1):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        members[n + step] = members.pop(a) + members.pop(b)
        j = wanted.get(step + 1)
        if j is not None:
            labels = np.empty(n, dtype=np.int64)
            for c, mem in enumerate(members.values()):
                labels[mem] = c
            out[j] = _first_seen(labels)
    return torch.from_numpy(out)


def silhouettes(
    points: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Mean silhouettes (K_i,) of the labellings ``labels[i]`` (K_i, n_i) of ``points[i]`` (n_i, d).

    All sets are padded into one batch; padded points belong to no cluster and are not averaged.
    """
    if not points:
        return []
    device = points[0].device
    sizes = [int(p.shape[0]) for p in points]
    counts_k = [int(lab.shape[0]) for lab in labels]
    b, m, kk = len(points), max(sizes), max(counts_k)
    ncl = max(int(lab.max()) + 1 if lab.numel() else 1 for lab in labels)
    # distances per set (the points may be wide, e.g. whole maps), then one padded batch
    dist = torch.zeros(b, m, m, dtype=torch.float64, device=device)
    onehot = torch.zeros(b, kk, m, ncl, dtype=torch.float64, device=device)
    mask = torch.zeros(b, m, dtype=torch.bool, device=device)
    for i, (p, lab) in enumerate(zip(points, labels)):
        x = p.to(device=device, dtype=torch.float64)
        sq = (x * x).sum(dim=-1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
        dist[i, : sizes[i], : sizes[i]] = d2.sqrt()
        mask[i, : sizes[i]] = True
        if lab.numel():
            onehot[i, : lab.shape[0], : sizes[i]] = torch.nn.functional.one_hot(
                lab.to(device), ncl
            ).to(torch.float64)
    dist = dist * (mask[:, :, None] & mask[:, None, :])
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
    )
    s = s * mask[:, :, None]
    mean = s.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)
    return [mean[i, : counts_k[i]].cpu() for i in range(b)]
