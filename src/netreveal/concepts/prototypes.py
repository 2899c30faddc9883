"""Prototypes: the training images that activate a component most, and how pure components are.

:class:`TopImages` keeps a running top-m over a stream of batches (per component and side) with each
chosen image's argmax feature cell, its image box and the component's map on it. The result,
:class:`Prototypes`, is a saveable result type.

:func:`part_purity` measures, on images with part masks (the parts world), how often a component's
strongest region falls on one part type: for each component its top images (by the maximum of its
map), the box of the argmax cell, the part covering most of that box, and the share of the most
common part among those images.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import torch

from netreveal.concepts.backbone import argmax_cells, cell_boxes
from netreveal.errors import NetrevealError
from netreveal.imaging import upsample
from netreveal.results import register

BACKGROUND = "background"


@register
@dataclasses.dataclass
class Prototypes:
    """Top-m dataset images per component and side.

    Shapes: ``indices`` / ``scores`` (S, K, m), ``cells`` (S, K, m, 2) as (row, col), ``boxes``
    (S, K, m, 4) as (x0, y0, x1, y1) pixels with exclusive ends, ``maps`` (S, K, m, h, w): the
    side's map of the component on that image at feature resolution (upsample it for display).
    S is 2 for signed components (side 0: most positive, side 1: most negative) and 1 otherwise.
    Slots with fewer than m images carry index -1 and score -inf. ``keys`` optionally names the
    dataset's images (file paths) so indices can be shown as files.
    """

    indices: torch.Tensor
    scores: torch.Tensor
    cells: torch.Tensor
    boxes: torch.Tensor
    maps: torch.Tensor
    image_size: list
    keys: list | None = None
    params: dict = dataclasses.field(default_factory=dict)

    @property
    def m(self) -> int:
        return int(self.indices.shape[-1])

    def heatmap(self, component: int, rank: int, side: int = 0) -> torch.Tensor:
        """The component's map on its ``rank``-th prototype image, upsampled to the image (H, W)."""
        return upsample(self.maps[side, component, rank][None].float(), tuple(self.image_size))[0]


class TopImages:
    """Running top-m images per (side, component) over batches of component maps.

    ``update(scores (B, S, K), maps (B, S, K, h, w), offset)`` where ``offset`` is the dataset
    index of the batch's first image; ties keep the earlier image.
    """

    def __init__(self, m: int):
        if m < 1:
            raise NetrevealError("the number of prototypes per component must be >= 1")
        self.m = m
        self.scores: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None
        self.maps: torch.Tensor | None = None

    def update(self, scores: torch.Tensor, maps: torch.Tensor, offset: int) -> None:
        b, s, k = scores.shape
        idx = (torch.arange(b, device=scores.device) + offset).view(b, 1, 1).expand(b, s, k)
        new_scores = scores.permute(1, 2, 0)  # (S, K, B)
        new_idx = idx.permute(1, 2, 0)
        new_maps = maps.permute(1, 2, 0, 3, 4)  # (S, K, B, h, w)
        if self.scores is None:
            h, w = maps.shape[-2:]
            self.scores = torch.full(
                (s, k, 0), float("-inf"), device=scores.device, dtype=scores.dtype
            )
            self.indices = torch.full((s, k, 0), -1, device=scores.device, dtype=torch.long)
            self.maps = torch.zeros((s, k, 0, h, w), device=maps.device, dtype=maps.dtype)
        all_scores = torch.cat([self.scores, new_scores], dim=2)
        all_idx = torch.cat([self.indices, new_idx], dim=2)
        all_maps = torch.cat([self.maps, new_maps], dim=2)
        keep = min(self.m, all_scores.shape[2])
        # stable descending sort: among equal scores the earlier (already kept) image stays first
        order = torch.sort(all_scores, dim=2, descending=True, stable=True).indices[..., :keep]
        self.scores = all_scores.gather(2, order)
        self.indices = all_idx.gather(2, order)
        h, w = all_maps.shape[-2:]
        self.maps = all_maps.gather(2, order[..., None, None].expand(-1, -1, -1, h, w))

    def result(
        self, image_size: Sequence[int], keys: list | None = None, params: dict | None = None
    ) -> Prototypes:
        """The prototypes found so far (slots beyond the number of images seen are empty)."""
        if self.scores is None:
            raise NetrevealError(
                "no images were seen: cannot mine prototypes from an empty dataset"
            )
        s, k, n = self.scores.shape
        pad = self.m - n
        scores, indices, maps = self.scores, self.indices, self.maps
        if pad > 0:
            scores = torch.cat(
                [
                    scores,
                    torch.full(
                        (s, k, pad), float("-inf"), dtype=scores.dtype, device=scores.device
                    ),
                ],
                2,
            )
            indices = torch.cat(
                [indices, torch.full((s, k, pad), -1, dtype=torch.long, device=indices.device)], 2
            )
            maps = torch.cat(
                [
                    maps,
                    torch.zeros(
                        (s, k, pad, *maps.shape[-2:]), dtype=maps.dtype, device=maps.device
                    ),
                ],
                2,
            )
        cells = argmax_cells(maps)
        grid = tuple(maps.shape[-2:])
        boxes = cell_boxes(cells, grid, tuple(image_size))
        return Prototypes(
            indices=indices.cpu(),
            scores=scores.cpu(),
            cells=cells.cpu(),
            boxes=boxes.cpu(),
            maps=maps.cpu(),
            image_size=[int(image_size[0]), int(image_size[1])],
            keys=keys,
            params=dict(params or {}),
        )


def box_part(
    box: Sequence[int], masks: torch.Tensor, parts: Sequence[str], min_cover: float = 0.1
) -> str:
    """The part type covering most of ``box`` (x0, y0, x1, y1), or ``background`` when no part
    covers at least ``min_cover`` of the box's pixels. ``masks`` is (P, H, W) boolean."""
    x0, y0, x1, y1 = (int(v) for v in box)
    area = max(1, (x1 - x0) * (y1 - y0))
    if masks.shape[0] == 0:
        return BACKGROUND
    cover: dict[str, int] = {}
    counts = masks[:, y0:y1, x0:x1].flatten(1).sum(dim=1)
    for name, c in zip(parts, counts.tolist()):
        cover[name] = cover.get(name, 0) + int(c)
    name, best = max(cover.items(), key=lambda kv: kv[1])
    return name if best >= min_cover * area else BACKGROUND


@dataclasses.dataclass
class Purity:
    """Part purity per component: ``purity`` (K,), the part label of each of its top images
    (``labels[k]``), its dominant part (``dominant[k]``), and the mean over components."""

    purity: torch.Tensor
    labels: list[list[str]]
    dominant: list[str]

    @property
    def mean(self) -> float:
        return float(self.purity.mean()) if self.purity.numel() else float("nan")


def part_purity(
    maps: torch.Tensor,
    masks: Sequence[torch.Tensor],
    parts: Sequence[Sequence[str]],
    *,
    top: int = 10,
    min_cover: float = 0.1,
    image_size: Sequence[int] | None = None,
) -> Purity:
    """Purity of components given their maps (N, K, h, w) on N images with part masks.

    For component k: its ``top`` images by ``max(maps[:, k])``, the box of each one's argmax cell,
    the part covering that box (:func:`box_part`), and purity = (number of images whose box falls
    on the most common *part* type) / ``top``. Boxes on background never count as pure.
    """
    n, k = maps.shape[:2]
    if len(masks) != n or len(parts) != n:
        raise NetrevealError("part purity needs one mask stack and one part list per image")
    if n == 0:
        raise NetrevealError("part purity needs at least one image")
    top = min(top, n)
    hw = tuple(image_size) if image_size is not None else tuple(masks[0].shape[-2:])
    peak = maps.flatten(2).amax(dim=2)  # (N, K)
    best = torch.sort(peak, dim=0, descending=True, stable=True).indices[:top]  # (top, K)
    cells = argmax_cells(maps)  # (N, K, 2)
    boxes = cell_boxes(cells, tuple(maps.shape[-2:]), hw)  # (N, K, 4)
    purity = torch.zeros(k)
    labels: list[list[str]] = []
    dominant: list[str] = []
    for comp in range(k):
        names = [
            box_part(boxes[i, comp].tolist(), masks[i], parts[i], min_cover)
            for i in best[:, comp].tolist()
        ]
        counts = Counter(x for x in names if x != BACKGROUND)
        if counts:
            part, c = counts.most_common(1)[0]
        else:
            part, c = BACKGROUND, 0
        purity[comp] = c / top
        labels.append(names)
        dominant.append(part)
    return Purity(purity=purity, labels=labels, dominant=dominant)
