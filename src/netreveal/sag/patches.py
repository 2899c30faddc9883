"""Patch sets as pixel masks, and the batched, cached scorer that pastes them on a baseline.

Patches are the cells of a ``grid x grid`` grid, numbered ``row * grid + col``. A set of patches
becomes a (H, W) insertion mask in one of two ways:

- ``"soft"``: the 0/1 ``grid x grid`` cell grid upsampled bilinearly with ``align_corners=True``
  (the reference code's ``UpsamplingBilinear2d``). Cell (r, c) is a tent of value 1 at pixel
  ``(r, c) * (size - 1) / (grid - 1)`` falling linearly to 0 at the neighbouring cells' centres,
  so neighbouring patches overlap and corner cells sit on the image corners.
- ``"hard"``: each pixel belongs to exactly one near-equal square (:func:`pixel_patches`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from netreveal.model.passes import forward_in_passes

PatchSet = tuple[int, ...]  # sorted patch indices
INSERTIONS = ("soft", "hard")


def pixel_patches(size: tuple[int, int], grid: int, device=None) -> torch.Tensor:
    """(H, W) long map from pixel to patch index ``row * grid + col`` (near-equal patch sizes)."""
    h, w = size
    rows = torch.arange(h, device=device) * grid // h
    cols = torch.arange(w, device=device) * grid // w
    return rows[:, None] * grid + cols[None, :]


def cell_grids(sets: Sequence[Iterable[int]], grid: int, device=None) -> torch.Tensor:
    """(n, grid, grid) float 0/1 grids, 1 on the cells of each set."""
    sel = torch.zeros(len(sets), grid * grid, device=device)
    for i, patches in enumerate(sets):
        sel[i, list(patches)] = 1.0
    return sel.view(len(sets), grid, grid)


def patch_masks(
    sets: Sequence[Iterable[int]], grid: int, size: tuple[int, int], insertion: str = "hard",
    device=None,
) -> torch.Tensor:
    """(n, H, W) insertion masks of ``sets`` at image ``size`` ("soft" or "hard", see the module)."""
    cells = cell_grids(sets, grid, device)
    if insertion == "soft":
        if grid == 1:
            return cells.expand(len(sets), *size).clone()
        return F.interpolate(cells[:, None], size=tuple(size), mode="bilinear", align_corners=True)[:, 0]
    if insertion != "hard":
        raise ValueError(f"unknown patch insertion {insertion!r}")
    return cells.view(len(sets), -1)[:, pixel_patches(tuple(size), grid, device)]


CHANNELS_LAST_MIN_BATCH = 4


def _has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


class PatchScorer:
    """Target probability of patch sets of one image, batched and cached.

    A set S is scored on ``baseline + mask(S) * (image - baseline)``; every distinct set is scored
    once (``forward_passes`` counts the images the model saw), in chunks of ``batch_size``.
    ``requests`` counts the sets asked for, repeats included: the forward passes of a scorer
    that runs one image per request, as the reference code does.

    ``channels_last``: feed the model batches of at least ``CHANNELS_LAST_MIN_BATCH`` sets in the
    channels-last layout (faster convolutions on CPU; smaller batches gain nothing). None
    (default) decides on the first such batch, for a model with 2-D convolutions: that batch is
    scored in both layouts (its size in extra passes) and the layout is used only when the
    probabilities agree bit for bit, so it changes no result.
    """

    def __init__(
        self,
        model: nn.Module,
        image: torch.Tensor,
        baseline: torch.Tensor,
        target: int,
        grid: int,
        batch_size: int,
        insertion: str = "hard",
        channels_last: bool | None = None,
    ):
        if insertion not in INSERTIONS:
            raise ValueError(f"unknown patch insertion {insertion!r}")
        self.model = model
        self.image = image
        self.baseline = baseline
        self.delta = image - baseline
        self.target = int(target)
        self.grid = int(grid)
        self.batch_size = int(batch_size)
        self.insertion = insertion
        self.channels_last = channels_last
        self.cache: dict[PatchSet, float] = {}
        self.forward_passes = 0
        self.requests = 0

    def masks(self, sets: Sequence[PatchSet]) -> torch.Tensor:
        """(n, H, W) insertion masks of ``sets``."""
        size = tuple(self.image.shape[-2:])
        return patch_masks(sets, self.grid, size, self.insertion, self.image.device).to(self.image.dtype)

    def _probs(self, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return forward_in_passes(self.model, x, layout).softmax(dim=1)[:, self.target]

    def _chunk_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of the batch ``x``; settles ``channels_last`` on the first batch large
        enough to use it (scored in both layouts, which must agree bit for bit)."""
        if len(x) < CHANNELS_LAST_MIN_BATCH or self.channels_last is False:
            return self._probs(x, False)
        if self.channels_last:
            return self._probs(x, True)
        probs = self._probs(x, False)
        self.channels_last = False
        if _has_convolutions(self.model):
            self.channels_last = bool(torch.equal(self._probs(x, True), probs))
            self.forward_passes += len(x)  # the check's second pass
        return probs

    def score(self, sets: Iterable[PatchSet]) -> list[float]:
        """Probabilities of ``sets`` (sorted tuples), scoring the new ones in batches; the batches'
        probabilities are read on the host once, after the last batch."""
        sets = list(sets)
        self.requests += len(sets)
        new = list(dict.fromkeys(s for s in sets if s not in self.cache))
        if new:
            probs = []
            with torch.inference_mode():
                for start in range(0, len(new), self.batch_size):
                    chunk = new[start : start + self.batch_size]
                    x = self.baseline + self.masks(chunk)[:, None] * self.delta
                    probs.append(self._chunk_probs(x))
                    self.forward_passes += len(chunk)
            self.cache.update(zip(new, torch.cat(probs).tolist(), strict=True))
        return [self.cache[s] for s in sets]
