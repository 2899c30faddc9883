"""How deletion/insertion is scored: netreveal's convention and those of two reference codes.

A :class:`Plan` says, for one batch of maps, in which order the map's cells are perturbed, after
how many cells each curve point is taken, how a set of perturbed cells becomes a per-pixel mix of
image and baseline, which baseline each mode uses, and how the area under a curve is computed.

- ``netreveal``: cells of the map's own resolution (nearest blocks of pixels), ``steps`` equal
  steps with both end points, the given baseline for both modes, trapezoid area over the share of
  cells perturbed.
- ``igos`` (the IGOS_pp code's ``metric``): cells of the map's own resolution, ``max(1, n //
  steps)`` cells per step; the binary cell mask is upsampled bilinearly with ``align_corners=True``,
  so each step mixes image and baseline softly across cell borders; the area is the right-hand sum
  ``sum(score * cells in the step) / n`` over the steps, the curve's start point excluded, and the
  last step counts its cell count rather than its score times the count, as that code does.
- ``rise`` (the RISE code's ``CausalMetric``): pixels (a coarse map is spread over its cells'
  pixels first, so cells stay whole in the order), ``ceil(H*W / steps)`` pixels per step; deletion
  on black, insertion from a blurred image (an 11-pixel Gaussian kernel, sigma 5, at 224 px,
  scaled with the image side, zero padding in the model's standardised units); trapezoid area
  over the step index divided by the number of steps.

Ties in a map are broken by raster order (first cell first) in every convention.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.imaging import blur_params, make_baseline

CONVENTIONS = ("netreveal", "igos", "rise")
IMAGENET_MEAN = (0.485, 0.456, 0.406)


@dataclasses.dataclass
class Plan:
    """One convention applied to one batch of maps (see the module docstring).

    ``ranks`` (B, h, w): the order cells are perturbed in (0 first), at the resolution ``keep``
    masks are built at; ``n_cells`` cells in all; ``counts`` cells perturbed at each curve point;
    ``fractions`` the curve's x axis; ``soft``: upsample cell masks bilinearly (else ``ranks`` are
    already per pixel); ``bases`` the baseline of each mode; ``area(curve)`` (B,) from (B, points).
    """

    ranks: torch.Tensor
    n_cells: int
    counts: list[int]
    fractions: torch.Tensor
    soft: bool
    bases: dict[str, torch.Tensor]
    area: Callable[[torch.Tensor], torch.Tensor]
    ranking: str
    baseline: str


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise NetrevealError(
            f"unknown metric convention {convention!r}; choose one of {', '.join(CONVENTIONS)}"
        )
    return convention


def cell_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank (0 = most salient) of every cell of each map (B, h, w); ties go to the earlier cell."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks.view_as(maps)


def nearest_cells(height: int, width: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell row of every pixel row and the cell column of every pixel column (nearest)."""
    # pixel centre (i + 1/2) falls in cell floor((i + 1/2) * h / H), in exact integer arithmetic
    rows = ((2 * torch.arange(height, device=device) + 1) * h) // (2 * height)
    cols = ((2 * torch.arange(width, device=device) + 1) * w) // (2 * width)
    return rows, cols


def pixel_ranks(ranks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cell ranks (B, h, w) spread over the pixels (B, H, W) each cell covers (nearest)."""
    h, w = ranks.shape[-2:]
    rows, cols = nearest_cells(size[0], size[1], h, w, ranks.device)
    dtype = torch.int32 if h * w < 2**31 else torch.int64
    return ranks.to(dtype)[:, rows][:, :, cols]


def step_counts(n_cells: int, steps: int) -> list[int]:
    """Cells perturbed after each of ``steps`` equal steps: round(s * n / steps), s = 0..steps."""
    return [(2 * s * n_cells + steps) // (2 * steps) for s in range(steps + 1)]


def igos_counts(n_cells: int, steps: int) -> tuple[list[int], int]:
    """The IGOS_pp metric's curve points: 0, then after each step of ``max(1, n // steps)`` cells
    up to all n; and the step size."""
    step = max(1, n_cells // steps)
    return [0] + [min(p + step, n_cells) for p in range(0, n_cells, step)], step


def igos_area(curve: torch.Tensor, counts: list[int], step: int) -> torch.Tensor:
    """The IGOS_pp metric's area: sum over steps of score x cells in the step, over n; the last
    step adds its cell count instead (the reference code's rule). ``curve`` (B, points)."""
    n = counts[-1]
    return (curve[:, 1:-1].sum(dim=1) * step + (n - counts[-2])) / n


def input_mean(model: nn.Module, channels: int, device) -> torch.Tensor:
    """The model's input mean (C, 1, 1) from its ``mean`` buffer, else the ImageNet mean."""
    mean = getattr(model, "mean", None)
    if isinstance(mean, torch.Tensor) and mean.numel() in (1, channels):
        return mean.detach().to(device=device, dtype=torch.float32).reshape(-1, 1, 1).expand(channels, 1, 1)
    if channels == len(IMAGENET_MEAN):
        return torch.tensor(IMAGENET_MEAN, device=device).view(-1, 1, 1)
    return torch.full((channels, 1, 1), sum(IMAGENET_MEAN) / 3, device=device)


def rise_kernel(size: int) -> torch.Tensor:
    """RISE's blur kernel: a centred delta smoothed by scipy's ``gaussian_filter`` (11 px, sigma 5
    at 224 px, scaled with the image side)."""
    klen, sigma = blur_params(size, 11, 5.0)
    delta = np.zeros((klen, klen))
    delta[klen // 2, klen // 2] = 1.0
    return torch.from_numpy(gaussian_filter(delta, sigma)).float()


def rise_blur(images: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """RISE's insertion substrate: each channel convolved with :func:`rise_kernel`, zero padding
    in the model's standardised units (so the border fades towards the model's input mean)."""
    kernel = rise_kernel(min(images.shape[-2:])).to(images.device, images.dtype)
    c, klen = images.shape[1], kernel.shape[-1]
    weight = kernel.expand(c, 1, klen, klen).contiguous()
    centred = F.conv2d(images - mean, weight, padding=klen // 2, groups=c)
    return centred + mean


def make_plan(
    convention: str,
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    steps: int,
    baseline: str | torch.Tensor,
) -> Plan:
    """The :class:`Plan` of ``convention`` for ``maps`` (B, h, w) on ``images`` (B, C, H, W)."""
    size = (int(images.shape[-2]), int(images.shape[-1]))
    maps = maps.float() if maps.dtype != torch.float64 else maps
    h, w = maps.shape[-2:]
    label = baseline if isinstance(baseline, str) else "tensor"
    ranking = "pixels" if (h, w) == size else "cells"
    if convention == "rise":
        rows, cols = nearest_cells(size[0], size[1], h, w, maps.device)
        ranks = cell_ranks(maps[:, rows][:, :, cols])
        n = size[0] * size[1]
        per_step = math.ceil(n / steps)
        n_steps = math.ceil(n / per_step)
        counts = [min(i * per_step, n) for i in range(n_steps + 1)]
        fractions = torch.arange(n_steps + 1, dtype=torch.float32) / n_steps
        bases = {"deletion": torch.zeros_like(images),
                 "insertion": rise_blur(images, input_mean(model, images.shape[1], images.device))}
        return Plan(ranks, n, counts, fractions, False, bases,
                    lambda curve: torch.trapezoid(curve, fractions, dim=1), ranking, "black / rise blur")
    base = make_baseline(images, baseline)
    bases = {"deletion": base, "insertion": base}
    n = h * w
    if convention == "igos":
        counts, step = igos_counts(n, steps)
        fractions = torch.tensor(counts, dtype=torch.float32) / n
        return Plan(cell_ranks(maps), n, counts, fractions, (h, w) != size, bases,
                    lambda curve: igos_area(curve, counts, step), ranking, label)
    counts = step_counts(n, steps)
    fractions = torch.tensor(counts, dtype=torch.float32) / n
    return Plan(pixel_ranks(cell_ranks(maps), size), n, counts, fractions, False, bases,
                lambda curve: torch.trapezoid(curve, fractions, dim=1), ranking, label)
