"""RISE: randomised input sampling for explanation (Petsiuk, Das and Saenko, BMVC 2018).

Each mask is a random binary ``cell`` x ``cell`` grid (a cell is kept with probability ``p``),
bilinearly upsampled to ``(cell + 1)`` times the cell size in pixels and cropped to the image at a
random shift of less than one cell, so mask edges fall anywhere. The saliency of pixel u for class c
is the expected class probability when u is kept:

    S(u) = sum_m P_c(x * m + b * (1 - m)) m(u) / (n_masks * p)

with b the baseline image (black in the paper). Grids and shifts come from one seeded generator,
drawn once on the CPU (a few bytes per mask). The full-resolution masks depend only on (n_masks,
cell, p, image size, seed), so they are made once on the model's device and kept in a small cache
(:data:`MASK_CACHE`, 256 MiB: 4,000 masks at 64 px take 66 MB; at 224 px they take 0.8 GB and are
made per chunk instead) for every image, batch and call with the same settings. Each chunk is a
single forward pass over every (image, mask) pair of a group of images, ``batch_size`` inputs at
most. :func:`rise_reference` computes the same sum one mask at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.perturb import class_targets, conv_layout, target_probs
from netreveal.attribution.tensor_cache import TensorCache
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline, minmax
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target

MASK_CACHE = TensorCache(256 * 2**20)  # full-resolution masks by (n_masks, cell, p, size, seed, device)
MASK_CHUNK = 256  # masks made per call of rise_masks when filling the cache


def rise_plan(
    n_masks: int, cell: int, p: float, size: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The random part of RISE: grids (n_masks, cell, cell) of 0/1, shifts (n_masks, 2) in pixels
    (row, column), and the cell size in pixels (rows, columns) for images of ``size`` (H, W)."""
    cell_px = (math.ceil(size[0] / cell), math.ceil(size[1] / cell))
    gen = torch.Generator().manual_seed(int(seed))
    grids = (torch.rand(n_masks, cell, cell, generator=gen) < p).float()
    shifts = torch.stack([torch.randint(0, cell_px[0], (n_masks,), generator=gen),
                          torch.randint(0, cell_px[1], (n_masks,), generator=gen)], dim=1)
    return grids, shifts, cell_px


def rise_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int],
               cell_px: tuple[int, int]) -> torch.Tensor:
    """Smooth masks (M, H, W) in [0, 1]: each grid upsampled to ``(cell + 1) * cell_px`` and cropped
    to ``size`` at its shift."""
    m, cell = grids.shape[0], grids.shape[-1]
    up = F.interpolate(grids[:, None], size=((cell + 1) * cell_px[0], (cell + 1) * cell_px[1]),
                       mode="bilinear", align_corners=False)[:, 0]
    rows = shifts[:, :1] + torch.arange(size[0], device=grids.device)  # (M, H)
    cols = shifts[:, 1:] + torch.arange(size[1], device=grids.device)  # (M, W)
    return up[torch.arange(m, device=grids.device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def mask_set(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int], cell_px: tuple[int, int],
             device: torch.device | str) -> torch.Tensor:
    """All masks (M, H, W) of a plan on ``device``, made :data:`MASK_CHUNK` at a time (the same
    values as :func:`rise_masks` of the whole plan, without its (M, (cell + 1) x cell_px...) buffer)."""
    out = torch.empty(len(grids), *size, device=device)
    for m0 in range(0, len(grids), MASK_CHUNK):
        out[m0:m0 + MASK_CHUNK] = rise_masks(grids[m0:m0 + MASK_CHUNK].to(device),
                                             shifts[m0:m0 + MASK_CHUNK].to(device), size, cell_px)
    return out


def cached_masks(cache: TensorCache | None, grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int],
                 cell_px: tuple[int, int], device: torch.device, key: tuple) -> torch.Tensor | None:
    """The plan's full masks (M, H, W) from ``cache`` under ``key`` (what the plan depends on), made
    on a miss; None without a cache or when they would not fit in it."""
    if cache is None or not cache.fits(len(grids) * size[0] * size[1] * 4):
        return None
    return cache.get_or_make((*key, str(device)), lambda: mask_set(grids, shifts, size, cell_px, device))


def _check(images: torch.Tensor, n_masks: int, cell: int, p: float, batch_size: int) -> None:
    if images.dim() != 4:
        raise NetrevealError(f"RISE needs images (B, 3, H, W), got shape {tuple(images.shape)}")
    if n_masks < 1:
        raise NetrevealError("RISE needs at least one mask")
    if cell < 1:
        raise NetrevealError(f"RISE grid side must be at least 1, got {cell}")
    if not 0.0 < p <= 1.0:
        raise NetrevealError(f"RISE keep probability p must be in (0, 1], got {p}")
    if batch_size < 1:
        raise NetrevealError("batch_size must be at least 1")


def _result(raw: torch.Tensor, targets: torch.Tensor, probs: torch.Tensor, n_masks: int, cell: int,
            p: float, baseline, seed: int, cell_px: tuple[int, int], loop: str) -> AttributionResult:
    return AttributionResult(
        method="rise",
        maps=minmax(raw),
        targets=targets.cpu(),
        target_probs=probs.cpu(),
        params={"n_masks": n_masks, "cell": cell, "p": p, "cell_px": list(cell_px), "seed": seed,
                "baseline": baseline if isinstance(baseline, str) else "tensor", "score": "softmax probability",
                "loop": loop, "map": "sum_m P(target | x * m) m / (n_masks * p), min-max"},
        provenance=provenance(seed=seed),
        raw=raw.cpu(),
    )


def rise(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    n_masks: int = 4000,
    cell: int = 7,
    p: float = 0.5,
    baseline: str | torch.Tensor = "black",
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
    mask_cache: TensorCache | None = MASK_CACHE,
) -> AttributionResult:
    """RISE saliency maps (B, H, W) for ``target`` (None: the predicted class, an int for all, or one
    class per image) of ``images`` (B, 3, H, W) in [0, 1].

    ``batch_size`` bounds the masked images per forward pass: images go in groups of at most
    ``batch_size``, and each group meets ``batch_size // group`` masks per pass. ``raw`` holds the
    unnormalised saliency (an expected probability); ``maps`` the min-max normalised one.
    ``mask_cache`` keeps the full-resolution masks for later images and calls (None: make them per
    chunk, for every group of images); the result is the same either way.
    """
    _check(images, n_masks, cell, p, batch_size)
    device = model_device(model)
    images = images.to(device)
    b, _, h, w = images.shape
    grids, shifts, cell_px = rise_plan(n_masks, cell, p, (h, w), seed)
    grids, shifts = grids.to(device), shifts.to(device)  # one copy, not one per chunk of masks
    layout = conv_layout(model)
    key = ("rise", n_masks, cell, float(p), (h, w), int(seed))
    every_mask = cached_masks(mask_cache, grids, shifts, (h, w), cell_px, device, key)
    saliency = torch.zeros(b, h, w, device=device)
    bar = tqdm(total=b * n_masks, desc="RISE", unit="eval", unit_scale=True, disable=not progress)
    try:
        with frozen(model), torch.no_grad():
            targets, probs = class_targets(model, images, target, batch_size, layout, "RISE")
            for start in range(0, b, batch_size):
                x, t = images[start:start + batch_size], targets[start:start + batch_size]
                g = len(x)
                base = make_baseline(x, baseline)
                chunk = max(1, batch_size // g)
                for m0 in range(0, n_masks, chunk):
                    if every_mask is not None:
                        masks = every_mask[m0:m0 + chunk]
                    else:
                        masks = rise_masks(grids[m0:m0 + chunk], shifts[m0:m0 + chunk],
                                           (h, w), cell_px)
                    c = len(masks)
                    inputs = torch.empty(g * c, *x.shape[1:], device=device, memory_format=layout)
                    torch.lerp(base[:, None], x[:, None], masks[None, :, None],
                               out=inputs.view(g, c, *x.shape[1:]))  # written in the layout the model reads
                    scores = target_probs(model, inputs, t.repeat_interleave(c), layout).view(g, c)
                    saliency[start:start + g] += torch.einsum("gc,chw->ghw", scores, masks)
                    bar.update(g * c)
    finally:
        bar.close()
    return _result(saliency / (n_masks * p), targets, probs, n_masks, cell, p, baseline, seed, cell_px, "batched")


def rise_reference(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    n_masks: int = 4000,
    cell: int = 7,
    p: float = 0.5,
    baseline: str | torch.Tensor = "black",
    seed: int = 0,
    progress: bool = False,
) -> AttributionResult:
    """RISE as the formula reads: for each image, for each mask, upsample and crop that one mask,
    run the masked image alone and add probability x mask. Same masks and result as :func:`rise`
    for the same seed; kept as the numerical and timing reference for the batched version."""
    _check(images, n_masks, cell, p, 1)
    device = model_device(model)
    images = images.to(device)
    b, _, h, w = images.shape
    grids, shifts, cell_px = rise_plan(n_masks, cell, p, (h, w), seed)
    layout = conv_layout(model)
    up_size = ((cell + 1) * cell_px[0], (cell + 1) * cell_px[1])
    saliency = torch.zeros(b, h, w, device=device)
    with frozen(model), torch.no_grad():
        targets, probs = class_targets(model, images, target, 1, layout, "RISE")
        for i in tqdm(range(b), desc="RISE (one mask at a time)", disable=not progress):
            x, t = images[i:i + 1], targets[i:i + 1]
            base = make_baseline(x, baseline)
            for k in range(n_masks):
                up = F.interpolate(grids[k].to(device)[None, None], size=up_size, mode="bilinear",
                                   align_corners=False)[0, 0]
                dy, dx = int(shifts[k, 0]), int(shifts[k, 1])
                mask = up[dy:dy + h, dx:dx + w]
                score = target_probs(model, x * mask + base * (1 - mask), t, layout)[0]
                saliency[i] += score * mask
    return _result(saliency / (n_masks * p), targets, probs, n_masks, cell, p, baseline, seed, cell_px,
                   "one mask at a time")
