"""Cluster maps at the input size, batched over the images of a layer.

A cluster map is sum_k w_k * upsample(A^k) / sum_k w_k. Bilinear upsampling is linear, so the
weighted sum is taken at the layer's resolution and only the cluster maps are upsampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from netreveal.imaging import minmax, upsample


def cluster_maps(
    activations: torch.Tensor,
    members: Sequence[Sequence[torch.Tensor]],
    weights: torch.Tensor,
    size: tuple[int, int],
) -> list[torch.Tensor]:
    """Maps (K_i, H, W) in [0, 1] of the clusters of each image.

    ``activations`` (B, C, h, w); ``members[i]`` the channel-index tensors of image i's clusters;
    ``weights`` (B, C) percent map weights.
    """
    b, c = activations.shape[:2]
    kmax = max((len(m) for m in members), default=0)
    if kmax == 0:
        return [activations.new_zeros(0, *size) for _ in range(b)]
    mix = torch.zeros(b, kmax, c, dtype=torch.float32, device=activations.device)
    for i, clusters in enumerate(members):
        for j, channels in enumerate(clusters):
            mix[i, j, channels.to(activations.device)] = (
                weights[i, channels.to(weights.device)].float().to(mix.device)
            )
    total = mix.sum(dim=-1, keepdim=True)
    mix = mix / total.clamp_min(torch.finfo(torch.float32).tiny)
    low = torch.bmm(mix, activations.float().flatten(2)).view(b, kmax, *activations.shape[2:])
    maps = minmax(upsample(low, size))
    return [maps[i, : len(members[i])] for i in range(b)]


def combined_map(maps: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The clusters' maps (K, H, W) summed with their weights (K,), normalised to [0, 1]; zeros
    when there is no cluster."""
    if maps.shape[0] == 0:
        return torch.zeros(size, dtype=torch.float32, device=maps.device)
    mixed = (maps.float() * weights.to(maps.device, torch.float32)[:, None, None]).sum(dim=0)
    return minmax(mixed)
