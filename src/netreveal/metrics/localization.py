"""Localization against ground-truth masks: pointing game and share of map energy in the mask.

Masks are (B, H, W) booleans, one per map: the union of the ground-truth regions that count for the
explained class (all its object instances, or all parts that define it). Maps may be at a lower
resolution than the masks; they are resized bilinearly to the mask size first.

Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016, as
implemented in TorchRay): the map "points" at its maximum; the point is a hit when some ground-truth
pixel lies at Euclidean distance < ``tolerance`` from it (equivalently, the point lies inside the
mask dilated by a disk of that radius). The reference uses 15 px on images of about 224 px; the
default here scales that to the mask size. A point inside the mask is always a hit (also with
tolerance 0). When several pixels share the maximum value, the map points at all of them and one
hit suffices; a constant map points nowhere and an empty mask cannot be hit: both count as misses.
"""

from __future__ import annotations

import math

import torch

from netreveal.errors import NetrevealError
from netreveal.imaging import upsample
from netreveal.results import AttributionResult

TOLERANCE_AT_224 = 15.0


def default_tolerance(size: int) -> float:
    """Pointing-game tolerance in pixels for images of side ``size``: 15 px at 224 px, scaled."""
    return TOLERANCE_AT_224 * size / 224.0


def _masks(masks: torch.Tensor) -> torch.Tensor:
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dim() != 3:
        raise NetrevealError(f"masks must have shape (B, H, W), got {tuple(masks.shape)}")
    return masks.bool()


def _maps_at(maps: torch.Tensor | AttributionResult, masks: torch.Tensor) -> torch.Tensor:
    if isinstance(maps, AttributionResult):
        maps = maps.maps
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise NetrevealError(f"maps must have shape (B, h, w), got {tuple(maps.shape)}")
    if maps.shape[0] != masks.shape[0]:
        raise NetrevealError(f"got {maps.shape[0]} maps for {masks.shape[0]} masks")
    maps = maps.detach().to(masks.device)
    maps = maps if maps.is_floating_point() else maps.float()
    if not bool(torch.isfinite(maps).all()):
        raise NetrevealError("maps contain NaN or infinite values")
    return upsample(maps, tuple(masks.shape[-2:]))


def _disk(radius: float, device: torch.device) -> torch.Tensor:
    """Offsets (K, 2) of the pixels at distance < ``radius`` from the origin, origin included."""
    r = max(0, math.ceil(radius))
    span = torch.arange(-r, r + 1, device=device)
    dy, dx = torch.meshgrid(span, span, indexing="ij")
    inside = (dy**2 + dx**2).double() < radius**2
    inside |= (dy == 0) & (dx == 0)
    return torch.stack([dy[inside], dx[inside]], dim=1)


def pointing_game(
    maps: torch.Tensor | AttributionResult,
    masks: torch.Tensor,
    tolerance: float | None = None,
    *,
    chunk: int = 1 << 22,
) -> torch.Tensor:
    """Pointing-game hits (B,) bool: the map's maximum lies within ``tolerance`` px of the mask.

    ``tolerance`` defaults to :func:`default_tolerance` of the smaller mask side (15 px at 224).
    See the module docstring for the definition, ties and degenerate cases.
    """
    masks = _masks(masks)
    maps = _maps_at(maps, masks)
    batch, height, width = masks.shape
    if tolerance is None:
        tolerance = default_tolerance(min(height, width))
    if tolerance < 0:
        raise NetrevealError(f"tolerance must be >= 0 pixels, got {tolerance}")
    flat = maps.flatten(1)
    top = flat.amax(dim=1, keepdim=True)
    informative = top[:, 0] > flat.amin(dim=1)
    peaks = ((maps == top[:, :, None]) & informative[:, None, None]).nonzero()  # (N, 3): b, y, x
    offsets = _disk(tolerance, masks.device)
    hits = torch.zeros(batch, dtype=torch.bool, device=masks.device)
    per = max(1, chunk // offsets.shape[0])
    for start in range(0, peaks.shape[0], per):
        b, y, x = peaks[start : start + per].unbind(dim=1)
        yy = y[:, None] + offsets[None, :, 0]
        xx = x[:, None] + offsets[None, :, 1]
        valid = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        inside = masks[b[:, None], yy.clamp(0, height - 1), xx.clamp(0, width - 1)] & valid
        hit = inside.any(dim=1)
        hits[b[hit]] = True
    return hits


def energy_in_mask(maps: torch.Tensor | AttributionResult, masks: torch.Tensor) -> torch.Tensor:
    """Share (B,) of each map's positive mass that falls inside its mask (0 for a map with none).

    Energy = sum of the map's positive values (negative evidence is ignored), after resizing the
    map to the mask size; the share is energy inside the mask / total energy, in [0, 1].
    """
    masks = _masks(masks)
    positive = _maps_at(maps, masks).clamp_min(0)
    total = positive.sum(dim=(1, 2))
    inside = (positive * masks).sum(dim=(1, 2))
    return torch.where(
        total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total)
    )


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boolean masks (B, H, W) from pixel boxes (B, 4) ``x0, y0, x1, y1`` (ends exclusive)."""
    boxes = torch.as_tensor(boxes)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise NetrevealError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    height, width = size
    ys = torch.arange(height, device=boxes.device)[None, :, None]
    xs = torch.arange(width, device=boxes.device)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
