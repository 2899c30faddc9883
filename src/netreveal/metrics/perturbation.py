"""Deletion and insertion curves and their areas, batched across images and perturbation steps.

Deletion starts from the image and replaces its most salient pixels by a baseline ("nothing here")
first; a faithful map makes the target probability fall fast (low area). Insertion starts from the
baseline and pastes the image's pixels back in the same order; a faithful map makes the probability
rise fast (high area).

Ranking happens at the map's own resolution: a (h, w) map has h*w cells, each covering its block of
image pixels (nearest upsampling of the cell grid), so a coarse map is never ranked through
interpolation noise. Ties are broken by raster order (first cell first). With n cells and ``steps``
steps, step s perturbs the first k_s = round(s * n / steps) cells, so k_0 = 0 and k_steps = n and
the curve always holds both end points; the fraction axis is k_s / n and the area is the trapezoid
rule over it.

That is netreveal's convention; ``convention="igos"`` and ``"rise"`` score as the IGOS_pp and RISE
reference codes do (soft cell masks and their area rule; pixel steps, black deletion and blurred
insertion): see :mod:`netreveal.metrics.perturbation_conventions`.

Every perturbed image is a window of ranks: cells whose rank r satisfies lo <= r < hi come from the
image, the others from the baseline (deletion after k cells: [k, n); insertion after k cells:
[0, k)). Each distinct window is scored once per image (the clean image, and the baseline when both
modes share it, are shared by both curves), in chunks of ``batch_size`` images built on the fly from
a rank map (per pixel, or per cell and then upsampled for the soft masks of the igos convention).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.metrics.perturbation_conventions import (
    CONVENTIONS,
    Plan,
    cell_ranks,
    check_convention,
    make_plan,
    pixel_ranks,
    step_counts,
)
from netreveal.model.hooks import frozen, model_device
from netreveal.model.passes import forward_in_passes
from netreveal.provenance import provenance
from netreveal.results import AttributionResult, register
from netreveal.targets import Target, resolve_targets

MODES = ("deletion", "insertion")


@register
@dataclasses.dataclass
class PerturbationScores:
    """Deletion / insertion curves and areas for a batch of maps.

    ``*_curve`` is (B, steps + 1): the target's softmax probability after each step, ``fractions``
    (steps + 1,) the share of map cells perturbed at each step (0 ... 1), ``*_auc`` (B,) the
    trapezoid area under each curve. A mode that was not asked for is ``None``.
    """

    deletion_auc: torch.Tensor | None
    insertion_auc: torch.Tensor | None
    deletion_curve: torch.Tensor | None
    insertion_curve: torch.Tensor | None
    fractions: torch.Tensor
    targets: torch.Tensor
    params: dict
    provenance: dict

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def summary(self) -> dict[str, float]:
        """Mean areas over the batch, and insertion - deletion when both exist."""
        out: dict[str, float] = {}
        if self.deletion_auc is not None:
            out["deletion_auc"] = float(self.deletion_auc.mean())
        if self.insertion_auc is not None:
            out["insertion_auc"] = float(self.insertion_auc.mean())
        if self.deletion_auc is not None and self.insertion_auc is not None:
            out["difference"] = out["insertion_auc"] - out["deletion_auc"]
        return out


def _as_maps(maps: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise NetrevealError(f"maps must have shape (B, h, w), got {tuple(maps.shape)}")
    if maps.shape[0] != batch:
        raise NetrevealError(f"got {maps.shape[0]} maps for {batch} images")
    h, w = maps.shape[-2:]
    if h > size[0] or w > size[1]:
        raise NetrevealError(f"map size {h}x{w} is larger than the image size {size[0]}x{size[1]}")
    if not bool(torch.isfinite(maps).all()):
        raise NetrevealError("maps contain NaN or infinite values")
    return maps


def _check_modes(modes: str | Sequence[str]) -> tuple[str, ...]:
    chosen = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in chosen if m not in MODES]
    if bad or not chosen:
        raise NetrevealError(
            f"unknown mode {bad[0] if bad else '(none)'!r}; choose from {', '.join(MODES)}"
        )
    return tuple(m for m in MODES if m in chosen)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return forward_in_passes(model, x, torch.contiguous_format)


def _composite(plan: Plan, images: torch.Tensor, base: torch.Tensor, img: torch.Tensor,
               lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The perturbed images of window [lo, hi) of ranks for images ``img`` (one window each)."""
    r = plan.ranks[img]
    keep = (r >= lo[:, None, None]) & (r < hi[:, None, None])
    if not plan.soft:
        return torch.where(keep[:, None], images[img], base)
    weight = F.interpolate(keep[:, None].to(images.dtype), size=images.shape[-2:], mode="bilinear",
                           align_corners=True)
    return base + weight * (images[img] - base)


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor | AttributionResult,
    targets: Target = None,
    *,
    steps: int = 50,
    baseline: str | torch.Tensor = "blur",
    modes: str | Sequence[str] = MODES,
    batch_size: int = 64,
    progress: bool = False,
    convention: str = "netreveal",
) -> PerturbationScores:
    """Deletion and insertion curves and areas of ``maps`` (B, h, w) for ``images`` (B, C, H, W).

    ``targets``: the class whose softmax probability is tracked (None = the class predicted on the
    clean image, or the explained classes when ``maps`` is an :class:`AttributionResult`; an int;
    or one per image). ``baseline``: ``blur`` (Gaussian, kernel 51 / sigma 50 at 224 px, scaled),
    ``black``, ``mean`` or a tensor broadcastable to the images. Maps smaller than the images are
    ranked cell by cell; maps at the input size pixel by pixel. ``convention``: ``netreveal``,
    ``igos`` or ``rise`` (see the module docstring; ``rise`` uses its own baselines and ignores
    ``baseline``). The model runs in eval mode under ``torch.no_grad`` on its own device,
    ``batch_size`` images at a time; its mode is restored.
    """
    if isinstance(maps, AttributionResult):
        if targets is None and bool((maps.targets >= 0).all()):
            targets = maps.targets
        maps = maps.maps
    if callable(targets) and not isinstance(targets, torch.Tensor):
        raise NetrevealError(
            "deletion/insertion tracks a class probability: give class indices, not a callable"
        )
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise NetrevealError("images must be a tensor of shape (B, C, H, W)")
    if int(steps) < 1 or int(batch_size) < 1:
        raise NetrevealError("steps and batch_size must be at least 1")
    steps, batch_size = int(steps), int(batch_size)
    chosen = _check_modes(modes)
    check_convention(convention)

    device = model_device(model, images.device)
    images = images.to(device)
    if not images.is_floating_point():
        raise NetrevealError("images must be floating point, in [0, 1]")
    batch, size = images.shape[0], (images.shape[-2], images.shape[-1])
    maps = _as_maps(torch.as_tensor(maps).detach().to(device), batch, size)
    map_size = (int(maps.shape[-2]), int(maps.shape[-1]))
    plan = make_plan(convention, model, images, maps, steps, baseline)
    n_cells = plan.n_cells
    shared = plan.bases["deletion"] is plan.bases["insertion"]
    base_keys = {"deletion": 0, "insertion": 0 if shared else 1}
    bases = torch.stack([plan.bases["deletion"]] + ([] if shared else [plan.bases["insertion"]]))

    # Windows (base, lo, hi) of ranks that show the image; (0, 0, n) is the clean image.
    clean = (0, 0, n_cells)

    def window(mode: str, lo: int, hi: int) -> tuple[int, int, int]:
        if lo == 0 and hi == n_cells:
            return clean
        return (base_keys[mode], lo, hi) if lo < hi else (base_keys[mode], 0, 0)

    wanted = {
        "deletion": [window("deletion", k, n_cells) for k in plan.counts],
        "insertion": [window("insertion", 0, k) for k in plan.counts],
    }
    windows = list(dict.fromkeys(w for m in chosen for w in wanted[m] if w != clean))
    which = torch.tensor([w[0] for w in windows], device=device, dtype=torch.long)
    lo = torch.tensor([w[1] for w in windows], device=device, dtype=plan.ranks.dtype)
    hi = torch.tensor([w[2] for w in windows], device=device, dtype=plan.ranks.dtype)

    n_pairs = batch * len(windows)
    n_chunks = -(-batch // batch_size) + -(-n_pairs // batch_size)
    bar = tqdm(total=n_chunks, desc="deletion/insertion", unit="batch", disable=not progress)
    with bar, frozen(model), torch.no_grad():
        clean_logits = torch.cat(
            [_logits(model, images[s : s + batch_size]) for s in range(0, batch, batch_size)]
        )
        bar.update(-(-batch // batch_size))
        idx = resolve_targets(targets, clean_logits)
        clean_probs = clean_logits.float().softmax(dim=1).gather(1, idx[:, None]).squeeze(1)
        probs = torch.empty(len(windows), batch, device=device, dtype=torch.float32)
        flat = probs.view(-1)
        for start in range(0, n_pairs, batch_size):
            pair = torch.arange(start, min(start + batch_size, n_pairs), device=device)
            job, img = pair // batch, pair % batch
            x = _composite(plan, images, bases[which[job], img], img, lo[job], hi[job])
            p = _logits(model, x).float().softmax(dim=1)
            flat[start : start + pair.numel()] = p.gather(1, idx[img, None]).squeeze(1)
            bar.update(1)

    column = {w: probs[i] for i, w in enumerate(windows)}
    column[clean] = clean_probs
    curves: dict[str, torch.Tensor | None] = {m: None for m in MODES}
    aucs: dict[str, torch.Tensor | None] = {m: None for m in MODES}
    for m in chosen:
        curve = torch.stack([column[w] for w in wanted[m]], dim=1).cpu()
        curves[m] = curve
        aucs[m] = plan.area(curve)

    params = {
        "steps": steps,
        "baseline": plan.baseline,
        "modes": list(chosen),
        "batch_size": batch_size,
        "map_size": list(map_size),
        "image_size": list(size),
        "ranking": plan.ranking,
        "score": "prob",
        "convention": convention,
    }
    return PerturbationScores(
        deletion_auc=aucs["deletion"],
        insertion_auc=aucs["insertion"],
        deletion_curve=curves["deletion"],
        insertion_curve=curves["insertion"],
        fractions=plan.fractions,
        targets=idx.cpu(),
        params=params,
        provenance=provenance(),
    )


__all__ = [
    "CONVENTIONS",
    "MODES",
    "PerturbationScores",
    "cell_ranks",
    "deletion_insertion",
    "pixel_ranks",
    "step_counts",
]
