"""Integrated gradients (Sundararajan et al. 2017) along the straight path from a baseline image to the
input; the heatmap is the per-pixel sum over colour channels of |attribution|, min-max normalised.

The path integral uses the Gauss-Legendre nodes and weights on [0, 1] (captum's default rule). Each
path point costs one forward and one backward pass and nothing else: the points of all images go
through the model as one stream, ``path_batch(batch_size)`` inputs per pass (in the channels-last
layout convolutions run fastest in on CPU), and one no-grad pass over the images and their baselines
(a single image for the black baseline, the same for every image) gives the explained classes, their
probabilities and the end points of the convergence delta (completeness: sum of attributions minus
the logit gap between image and baseline). :func:`integrated_gradients_reference` is the same
integral through captum, batch by batch as netreveal ran it before, kept as the numerical reference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.perturb import conv_layout
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline, minmax
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, check_count, class_indices, slice_targets


def map_from_attribution(raw: torch.Tensor) -> torch.Tensor:
    """Heatmaps (B, H, W): the sum over colour channels of |attribution| (B, 3, H, W), min-max."""
    return minmax(raw.abs().sum(dim=1))


def path_batch(batch_size: int) -> int:
    """Path points per forward/backward pass for ``batch_size`` images: four per image, at least 16."""
    return max(batch_size * 4, 16)


def path_points(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes (steps,) in (0, 1) and their weights (summing to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (torch.tensor(0.5 * (1 + nodes), dtype=torch.float32),
            torch.tensor(0.5 * weights, dtype=torch.float32))


def _check(images: torch.Tensor, steps: int, batch_size: int) -> None:
    if steps < 1:
        raise NetrevealError("integrated gradients needs at least one step")
    if images.dim() != 4 or images.shape[0] == 0:
        raise NetrevealError(f"need images (B, 3, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise NetrevealError("batch_size must be at least 1")


@torch.no_grad()
def _end_points(model: nn.Module, images: torch.Tensor, bases: torch.Tensor, shared_base: bool,
                target: Target, batch_size: int, layout: torch.memory_format) -> tuple[torch.Tensor, ...]:
    """Targets (B,), their probabilities (B,) and logits at the images and at the baselines (B,)."""
    def logits_of(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(x[s:s + batch_size].contiguous(memory_format=layout)).float()
                          for s in range(0, len(x), batch_size)])

    n = len(images)
    both = logits_of(torch.cat([images, bases[:1] if shared_base else bases]))
    at_image, at_base = both[:n], both[n:].expand(n, -1)
    targets = class_indices(target, at_image, "integrated gradients")
    pick = targets[:, None]
    probs = at_image.softmax(1).gather(1, pick)[:, 0]
    return targets, probs, at_image.gather(1, pick)[:, 0], at_base.gather(1, pick)[:, 0]


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    steps: int = 50,
    baseline: str = "black",
    batch_size: int = 8,
    progress: bool = False,
) -> AttributionResult:
    """Integrated-gradients heatmaps (B, H, W) of ``images`` in [0, 1] for ``target`` (None: the
    predicted class, an int for all, or one class per image). ``raw`` is the attribution (B, 3, H, W);
    ``extras["convergence_delta"]`` its completeness error per image."""
    _check(images, steps, batch_size)
    check_count(target, len(images))
    device = model_device(model)
    images = images.to(device)
    n = len(images)
    bases = make_baseline(images, baseline)
    layout = conv_layout(model)
    alphas, weights = (t.to(device) for t in path_points(steps))
    owner = torch.arange(n, device=device).repeat_interleave(steps)  # path point -> image
    step = torch.arange(steps, device=device).repeat(n)  # path point -> node
    total = torch.zeros_like(images)
    start_cl, end_cl = bases.contiguous(memory_format=layout), images.contiguous(memory_format=layout)
    chunk = path_batch(batch_size)
    bar = tqdm(total=n * steps, desc="integrated gradients", unit="point", disable=not progress)
    try:
        with frozen(model):
            shared = isinstance(baseline, str) and baseline == "black"  # one black image serves all
            targets, probs, at_image, at_base = _end_points(model, images, bases, shared, target, chunk, layout)
            for start in range(0, n * steps, chunk):
                who, k = owner[start:start + chunk], step[start:start + chunk]
                with torch.no_grad():  # path points in the layout the model reads
                    points = torch.lerp(start_cl[who], end_cl[who], alphas[k].view(-1, 1, 1, 1))
                points.requires_grad_(True)
                with torch.enable_grad():
                    score = model(points).gather(1, targets[who][:, None]).sum()
                    (grad,) = torch.autograd.grad(score, points)
                total.index_add_(0, who, grad * weights[k].view(-1, 1, 1, 1))
                bar.update(len(who))
    finally:
        bar.close()
    raw = total * (images - bases)
    delta = raw.sum(dim=(1, 2, 3)) - (at_image - at_base)
    return _result(raw, targets, probs, delta, steps, baseline)


def _result(raw: torch.Tensor, targets: torch.Tensor, probs: torch.Tensor, delta: torch.Tensor, steps: int,
            baseline: str) -> AttributionResult:
    return AttributionResult(
        method="ig",
        maps=map_from_attribution(raw),
        targets=targets,
        target_probs=probs,
        params={"steps": steps, "baseline": baseline, "map": "sum over channels of |attribution|, min-max"},
        provenance=provenance(),
        raw=raw,
        extras={"convergence_delta": delta},
    )


def integrated_gradients_reference(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    steps: int = 50,
    baseline: str = "black",
    batch_size: int = 8,
    progress: bool = False,
) -> AttributionResult:
    """The same integral through captum's ``IntegratedGradients``, ``batch_size`` images at a time,
    with a forward pass for the targets and captum's convergence delta (two more forward passes per
    image): the numerical and cost reference for :func:`integrated_gradients`."""
    from captum.attr import IntegratedGradients

    _check(images, steps, batch_size)
    check_count(target, len(images))
    images = images.to(model_device(model))
    raws, deltas, probs, targets = [], [], [], []
    with frozen(model):
        ig = IntegratedGradients(model)
        for start in tqdm(range(0, len(images), batch_size), desc="integrated gradients", disable=not progress):
            x = images[start:start + batch_size]
            with torch.no_grad():
                logits = model(x)
            t = class_indices(slice_targets(target, start, start + len(x)), logits, "integrated gradients")
            attr, delta = ig.attribute(x, baselines=make_baseline(x, baseline), target=t, n_steps=steps,
                                       internal_batch_size=path_batch(batch_size), return_convergence_delta=True)
            raws.append(attr.detach())
            deltas.append(delta.detach())
            targets.append(t)
            probs.append(logits.softmax(1).gather(1, t[:, None]).squeeze(1))
    return _result(torch.cat(raws), torch.cat(targets), torch.cat(probs), torch.cat(deltas), steps, baseline)
