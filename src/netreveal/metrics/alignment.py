"""Do maps line up with ground-truth parts? The best IoU between a map's strongest region and any
part mask, as used to judge INV cluster maps (and any concept map) on the parts world."""

from __future__ import annotations

import torch

from netreveal.errors import NetrevealError
from netreveal.imaging import upsample


def top_region(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean masks (N, H, W) of each map's top ``fraction`` of pixels (at least one pixel).

    Ties at the cut are broken by torch.topk (deterministic on one device), so the region has
    exactly ``ceil(fraction * H * W)`` pixels.
    """
    if not 0 < fraction <= 1:
        raise NetrevealError(f"top-region fraction must be in (0, 1], got {fraction}")
    flat = maps.flatten(1).float()
    k = max(1, int(torch.ceil(torch.tensor(fraction * flat.shape[1])).item()))
    idx = flat.topk(k, dim=1).indices
    region = torch.zeros_like(flat, dtype=torch.bool)
    region.scatter_(1, idx, True)
    return region.view(maps.shape)


def best_part_iou(
    maps: torch.Tensor, part_masks: torch.Tensor, fraction: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each map (N, h, w), the best IoU of its top-``fraction`` region with one of the image's
    part masks (P, H, W), and which part gave it (-1 when there is no part)."""
    if part_masks.dim() != 3:
        raise NetrevealError("part masks must have shape (P, H, W)")
    n = maps.shape[0]
    if part_masks.shape[0] == 0 or n == 0:
        return torch.zeros(n), torch.full((n,), -1, dtype=torch.long)
    maps = upsample(maps.float(), tuple(part_masks.shape[-2:]))
    region = top_region(maps, fraction).flatten(1).float()  # (N, HW)
    parts = part_masks.flatten(1).float()  # (P, HW)
    inter = region @ parts.T
    union = region.sum(1, keepdim=True) + parts.sum(1)[None, :] - inter
    iou = inter / union.clamp_min(1)
    best, which = iou.max(dim=1)
    return best, which
