"""I-GOS and iGOS++: saliency masks optimised with integrated gradients, batched.

I-GOS (Qi, Khorram, Li, AAAI 2020) looks for a small, smooth low-resolution mask M whose deletion
(replacing the masked pixels by a baseline) destroys the target class probability. Its descent
direction is the integrated gradient of the score along the path from the baseline to the masked
image, which escapes the poor local optima of the plain gradient. iGOS++ (Khorram, Lawson, Li,
CHIL 2021) adds an insertion mask (the salient pixels pasted on the baseline must restore the
score), combines the two masks by their product and smooths with a bilateral TV that lets the
mask follow image edges. See :mod:`netreveal.attribution.igos_engine` for the exact objective.

Heatmap convention: ``maps = 1 - upsample(M)`` with M the output mask (the deletion mask for
I-GOS, deletion x insertion mask for iGOS++), so high = important, in [0, 1], not rescaled.
``raw`` holds M itself at the mask resolution (1 = unimportant).

Batching: all images are optimised together; each (image, term, path step) is one model input
and they run in chunks of ``batch_size``. Each image has its own line-search step, L1 weight and
loss curve; the path noise is drawn per iteration and shared by all images, so an image's result
does not depend on the batch it is in.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.igos_engine import Nesterov, Objective, line_search
from netreveal.attribution.igos_paths import PathScorer
from netreveal.attribution.igos_reg import Upsampler
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult, register
from netreveal.targets import Target, resolve_targets

METHODS = ("igos", "igos++")
OPTIMIZERS = ("line_search", "nesterov")
REFERENCE_CELLS = 28 * 28  # alpha0 defaults are set for a 28x28 mask and scaled with the cell count
IMAGENET_STD = (0.229, 0.224, 0.225)


@register
@dataclasses.dataclass
class IgosResult(AttributionResult):
    """I-GOS / iGOS++ heatmaps: an :class:`AttributionResult` whose ``raw`` is the optimised mask and
    whose ``extras`` hold the optimisation record (losses, deletion/insertion scores, steps...)."""


def noise_scale(model: nn.Module, channels: int, device: torch.device) -> torch.Tensor:
    """Pixel-unit sd of one unit of noise in the model's standardised input space, (C, 1, 1).

    Read from the model's ``std`` buffer (netreveal's normalising wrapper and the demo model have
    one); models without it are taken to use the ImageNet std.
    """
    std = getattr(model, "std", None)
    if isinstance(std, torch.Tensor) and std.numel() in (1, channels):
        return (
            std.detach()
            .to(device=device, dtype=torch.float32)
            .reshape(-1, 1, 1)
            .expand(channels, 1, 1)
        )
    if channels == len(IMAGENET_STD):
        return torch.tensor(IMAGENET_STD, device=device).view(-1, 1, 1)
    return torch.full((channels, 1, 1), sum(IMAGENET_STD) / 3, device=device)


def _mask_shape(mask_size: int | tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = (mask_size, mask_size) if isinstance(mask_size, int) else tuple(mask_size)
    if h < 1 or w < 1 or h > image_size[0] or w > image_size[1]:
        raise NetrevealError(
            f"mask size {h}x{w} must be between 1x1 and the image size "
            f"{image_size[0]}x{image_size[1]}"
        )
    return int(h), int(w)


def _check(method: str, optimizer: str, iterations: int, ig_steps: int, batch_size: int) -> None:
    if method not in METHODS:
        raise NetrevealError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if optimizer not in OPTIMIZERS:
        raise NetrevealError(
            f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if iterations < 1 or ig_steps < 1 or batch_size < 1:
        raise NetrevealError("iterations, ig_steps and batch_size must be at least 1")


def igos(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    method: str = "igos++",
    mask_size: int | tuple[int, int] = 28,
    baseline: str | torch.Tensor = "blur",
    iterations: int = 15,
    ig_steps: int = 20,
    noise: float = 0.2,
    l1: float = 1.0,
    l2: float = 20.0,
    sigma: float = 0.01,
    optimizer: str = "line_search",
    alpha0: float | None = None,
    c: float = 1e-4,
    decay: float = 0.2,
    min_step: float = 1e-5,
    l1_decay: bool = True,
    warm_start: bool = True,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> IgosResult:
    """I-GOS (``method="igos"``) or iGOS++ (``"igos++"``) heatmaps for ``images`` (B, 3, H, W).

    - ``target``: None (predicted class), an int, or one class per image.
    - ``mask_size``: side of the optimised mask (7, 14, 28, 224 ...; an (h, w) pair also works).
    - ``baseline``: "blur" | "black" | "mean" or a tensor (the "nothing here" image).
    - ``ig_steps``: path steps per integrated gradient; ``noise``: sd of the Gaussian noise added
      to every path image, in the model's standardised input units (the reference adds it to
      normalised images); it is converted to pixel units with the model's ``std`` buffer (or the
      ImageNet std), e.g. 0.2 -> 0.05 for a model normalising with std 0.25. One draw per
      iteration, shared by all images, from ``seed``.
    - ``l1`` weighs mean|1-M|; ``l2`` the total variation (bilateral for iGOS++, edge scale
      ``sigma`` on squared colour differences in [0, 1] units).
    - ``optimizer``: "line_search" (Armijo: first step ``alpha0``, sufficient decrease ``c``,
      shrink by ``decay`` down to ``min_step``, one step size per image) or "nesterov" (fixed
      step ``alpha0``, momentum i/(i+3)). ``alpha0`` defaults, for a 28x28 mask, to 1000 for the
      line search and 2 for Nesterov (a fixed step must stay below the TV stability limit, about
      28*27/(8*l2)); both scale with the number of mask cells, as the gradients do.
    - ``warm_start``: start an image's search at ``min(alpha0, last accepted step / decay)``
      instead of ``alpha0`` every iteration; it skips most rejected trials. False: plain search.
    - ``l1_decay``: divide an image's L1 weight by 10 at half the iterations and by 5 at 80% when
      its deletion score has not moved from the full-image probability (by 1e-3, 1e-2).
    - ``batch_size``: model inputs per forward pass (each is one image x term x path step).

    Returns an :class:`IgosResult`: ``maps`` = 1 - upsampled output mask (high =
    important), ``raw`` = the output mask (B, h, w), ``extras``: ``losses`` (B, iterations)
    objective after each iteration, ``deletion_scores`` (iGOS++ also ``insertion_scores``)
    (B, iterations) target probability with the output mask applied, ``steps`` (B, iterations)
    step taken (0 = none), ``deletion_mask`` (iGOS++ also ``insertion_mask``) (B, h, w), ``l1``
    (B,) final L1 weights, ``model_inputs`` (number of images the model scored).
    """
    _check(method, optimizer, iterations, ig_steps, batch_size)
    if images.dim() != 4:
        raise NetrevealError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if callable(target) and not isinstance(target, torch.Tensor):
        raise NetrevealError("igos needs class indices as target, not a callable")
    device = model_device(model, images.device)
    images = images.to(device=device, dtype=torch.float32)
    size = tuple(images.shape[-2:])
    h, w = _mask_shape(mask_size, size)
    n = images.shape[0]
    cells = h * w
    if alpha0 is None:
        alpha0 = (1000.0 if optimizer == "line_search" else 2.0) * cells / REFERENCE_CELLS
    baselines = make_baseline(images, baseline)

    with frozen(model):
        with torch.no_grad():
            chunks = [model(images[i : i + batch_size]) for i in range(0, n, batch_size)]
            logits = torch.cat(chunks)
        targets = resolve_targets(target, logits)
        full_probs = logits.softmax(dim=1).gather(1, targets[:, None]).squeeze(1)
        upsampler = Upsampler((h, w), size, device)
        scorer = PathScorer(model, images, baselines, targets, ig_steps, batch_size)
        scorer.forward_images = n
        l1w = torch.full((n,), float(l1), device=device)
        objective = Objective(method, scorer, upsampler, l1w, l2, sigma)
        rows = torch.arange(n, device=device)
        params = torch.ones(n, objective.n_params, h, w, device=device)
        loss, data = objective.loss(params, rows)
        stepper = Nesterov(params, alpha0) if optimizer == "nesterov" else None
        generator = torch.Generator(device=device).manual_seed(int(seed))
        n_terms = objective.inserts.numel()
        pixel_noise = noise * noise_scale(model, images.shape[1], device)

        losses = torch.zeros(n, iterations, device=device)
        del_scores = torch.zeros(n, iterations, device=device)
        ins_scores = torch.zeros(n, iterations, device=device)
        steps_taken = torch.zeros(n, iterations, device=device)
        half, late = iterations // 2, int(iterations / 1.25)
        for it in tqdm(range(iterations), desc=method, disable=not progress, unit="it"):
            table = None
            if noise > 0:
                table = pixel_noise * torch.randn(
                    (n_terms, ig_steps, *images.shape[1:]), generator=generator, device=device
                )
            grad = objective.gradient(params, table)
            if stepper is None:
                start = torch.full((n,), float(alpha0), device=device)
                if warm_start and it > 0:
                    last = steps_taken[:, it - 1]
                    start = torch.where(last > 0, torch.minimum(start, last / decay), start)
                params, loss, data, taken = line_search(
                    params, grad, objective.loss, loss, data, start, c, decay, min_step
                )
            else:
                params = stepper(params, grad)
                loss, data = objective.loss(params, rows)
                taken = torch.full((n,), float(alpha0), device=device)
            out_up = upsampler.up(objective.output(params))
            losses[:, it], steps_taken[:, it] = loss, taken
            del_scores[:, it] = scorer.probs(out_up, insert=False)
            if method == "igos++":
                ins_scores[:, it] = scorer.probs(out_up, insert=True)
            if l1_decay and iterations > 3 and it in (half, late):
                stalled = (full_probs - del_scores[:, it]).abs() <= (1e-3 if it == half else 1e-2)
                if bool(stalled.any()):
                    objective.l1[stalled] /= 10.0 if it == half else 5.0
                    loss = data + objective.reg(objective.output(params), rows)

    out = objective.output(params)
    extras = {
        "losses": losses,
        "deletion_scores": del_scores,
        "steps": steps_taken,
        "deletion_mask": params[:, 0].clone(),
        "l1": objective.l1.clone(),
        "model_inputs": int(scorer.forward_images),
    }
    if method == "igos++":
        extras["insertion_scores"] = ins_scores
        extras["insertion_mask"] = params[:, 1].clone()
    params_record = {
        "method": method,
        "mask_size": [h, w],
        "baseline": baseline if isinstance(baseline, str) else "tensor",
        "iterations": iterations,
        "ig_steps": ig_steps,
        "noise": noise,
        "l1": l1,
        "l2": l2,
        "sigma": sigma,
        "optimizer": optimizer,
        "alpha0": alpha0,
        "c": c,
        "decay": decay,
        "min_step": min_step,
        "l1_decay": l1_decay,
        "warm_start": warm_start,
        "batch_size": batch_size,
        "seed": seed,
        "score": "prob",
    }
    return IgosResult(
        method=method,
        maps=1 - upsampler.up(out),
        targets=targets,
        target_probs=full_probs,
        params=params_record,
        provenance=provenance(seed=seed),
        raw=out,
        extras=extras,
    )
