"""Perturbation baselines through captum: occlusion, LIME and KernelSHAP, as netreveal results.

All three explain the target's softmax probability and replace hidden pixels with a baseline image
(a heavy blur by default, as the deletion/insertion metrics use). LIME's ``fill="mean"`` fills each
switched-off superpixel with that superpixel's mean colour instead, as the reference ``lime``
package does by default (``LimeImageExplainer.explain_instance(hide_color=None)``). Each image is
explained on its own; LIME's and KernelSHAP's perturbed copies of all images go through the model
``batch_size`` at a time (:mod:`netreveal.attribution.surrogates`: captum's samples and surrogate
fits, our own batching), occlusion's through captum (``perturbations_per_eval``).

- Occlusion (Zeiler and Fergus 2014): a ``window`` square slides with ``stride``; a pixel's score is
  the mean drop in probability over the windows covering it.
- LIME (Ribeiro et al. 2016) and KernelSHAP (Lundberg and Lee 2017) work on SLIC superpixels
  (scikit-image; its grid initialisation makes them deterministic; a regular grid stands in where
  SLIC finds almost none, as on noise). LIME fits a weighted ridge regression (alpha 1) to random
  on/off superpixel samples, weighted by an exponential kernel (width 0.25) on the cosine distance
  of a sample to the all-on vector, as the reference LIME does for images. KernelSHAP samples
  coalitions from the Shapley kernel and fits a linear regression. Their samplers draw from torch's
  global CPU generator, seeded with ``seed`` for each image and restored afterwards; all of an
  image's samples are drawn on the host first and copied to the model's device in one go.

Heatmaps are signed scores (high = evidence for the target, low = against it), min-max normalised.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.perturb import class_targets, conv_layout, probabilities
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline, minmax
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target

LIME_KERNEL_WIDTH = 0.25
LIME_RIDGE_ALPHA = 1.0
SLIC_COMPACTNESS = 10.0
# what a switched-off superpixel shows in LIME: its own mean colour (the lime package) or the baseline
LIME_FILLS = ("mean", "baseline")


def default_window(size: int) -> tuple[int, int]:
    """Occlusion window and stride for images of side ``size``: an eighth of the side, half-overlapping
    (8/4 px at 64 px, 28/14 px at 224 px: 15 x 15 windows either way)."""
    window = max(2, round(size / 8))
    return window, max(1, window // 2)


def default_segments(height: int, width: int) -> int:
    """SLIC superpixels asked for: one per ~80 pixels, between 16 and 100 (51 at 64 px, 100 at 224 px)."""
    return int(min(100, max(16, (height * width) // 80)))


def default_samples(segments: int) -> int:
    """Perturbed samples for LIME / KernelSHAP: ten per superpixel, at least 256."""
    return max(256, 10 * segments)


def default_slic_sigma(height: int, width: int) -> float:
    """Pre-smoothing for SLIC: sigma 1 px at 224 px, scaled with the shorter side."""
    return min(height, width) / 224.0


def grid_segments(height: int, width: int, segments: int) -> torch.Tensor:
    """A regular grid of about ``segments`` rectangular cells as labels (H, W)."""
    rows = max(1, min(height, round(math.sqrt(segments * height / width))))
    cols = max(1, min(width, math.ceil(segments / rows)))
    r = torch.arange(height) * rows // height
    c = torch.arange(width) * cols // width
    return r[:, None] * cols + c[None, :]


def superpixels(images: torch.Tensor, segments: int, compactness: float = SLIC_COMPACTNESS,
                sigma: float | None = None) -> tuple[torch.Tensor, int]:
    """SLIC superpixel labels (B, H, W), numbered 0..K-1 per image (K close to ``segments``), and how
    many images fell back to a regular grid of ``segments`` cells because SLIC found fewer than a
    quarter of the superpixels asked for (it merges everything on noise-like images).
    ``sigma`` (Gaussian pre-smoothing, px) defaults to :func:`default_slic_sigma`."""
    from skimage.segmentation import slic

    if segments < 1:
        raise NetrevealError(f"need at least one superpixel, got {segments}")
    h, w = images.shape[-2:]
    if sigma is None:
        sigma = default_slic_sigma(h, w)
    labels, fallbacks = [], 0
    for image in images.detach().float().cpu():
        found = slic(image.permute(1, 2, 0).clamp(0, 1).numpy(), n_segments=segments, compactness=compactness,
                     sigma=sigma, start_label=0, channel_axis=-1)
        _, dense = torch.unique(torch.from_numpy(found).long(), return_inverse=True)
        if int(dense.max()) + 1 < max(2, segments // 4) and segments > 1:
            dense, fallbacks = grid_segments(h, w, segments), fallbacks + 1
        labels.append(dense)
    return torch.stack(labels).to(images.device), fallbacks


def superpixel_means(image: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """``image`` (C, H, W) or (1, C, H, W) with every pixel replaced by the mean colour of its
    superpixel in ``segments`` (H, W), labels 0..K-1: the lime package's ``hide_color=None``."""
    x = image.reshape(-1, *image.shape[-2:])
    seg = segments.reshape(-1).to(x.device).long()
    k = int(seg.max()) + 1
    flat = x.reshape(x.shape[0], -1).double()
    sums = torch.zeros(x.shape[0], k, dtype=torch.float64, device=x.device).index_add_(1, seg, flat)
    counts = torch.bincount(seg, minlength=k).clamp_min(1).double()
    return (sums / counts)[:, seg].to(image.dtype).reshape(image.shape)


def _check(images: torch.Tensor, batch_size: int) -> None:
    if images.dim() != 4:
        raise NetrevealError(f"need images (B, 3, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise NetrevealError("batch_size must be at least 1")


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise NetrevealError(f"occlusion {name} must be a positive int or (rows, cols), got {value!r}")
    return pair  # type: ignore[return-value]


def _baseline_name(baseline) -> str:
    return baseline if isinstance(baseline, str) else "tensor"


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    baseline: str | torch.Tensor = "blur",
    batch_size: int = 64,
    progress: bool = False,
) -> AttributionResult:
    """Occlusion heatmaps (B, H, W) for ``target`` (None: the predicted class, an int for all, or one
    class per image) of ``images`` (B, 3, H, W) in [0, 1].

    ``window`` / ``stride`` default to :func:`default_window` of the shorter side. ``raw`` is the mean
    drop in target probability when a window covering the pixel shows the baseline instead.
    """
    from captum.attr import Occlusion

    _check(images, batch_size)
    device = model_device(model)
    images = images.to(device)
    h, w = images.shape[-2:]
    auto_window, auto_stride = default_window(min(h, w))
    window = _pair(auto_window if window is None else window, "window")
    stride = _pair(auto_stride if stride is None else stride, "stride")
    if window[0] > h or window[1] > w:
        raise NetrevealError(f"occlusion window {window} is larger than the images ({h}x{w})")
    layout = conv_layout(model)
    raws = []
    with frozen(model), torch.no_grad():
        targets, probs = class_targets(model, images, target, batch_size, layout, "occlusion")
        attributor = Occlusion(lambda z: probabilities(model, z, layout))
        for i in tqdm(range(len(images)), desc="occlusion", unit="img", disable=not progress):
            x, t = images[i:i + 1], targets[i:i + 1]
            attr = attributor.attribute(x, sliding_window_shapes=(3, *window), strides=(3, *stride),
                                        baselines=make_baseline(x, baseline), target=int(t),
                                        perturbations_per_eval=batch_size)
            raws.append(attr[:, 0])
    raw = torch.cat(raws).float()
    return AttributionResult(
        method="occlusion",
        maps=minmax(raw),
        targets=targets.cpu(),
        target_probs=probs.cpu(),
        params={"window": list(window), "stride": list(stride), "baseline": _baseline_name(baseline),
                "score": "softmax probability", "map": "mean probability drop over covering windows, min-max"},
        provenance=provenance(),
        raw=raw.cpu(),
    )


def _lime_similarity(original, perturbed, interpretable: torch.Tensor, **kwargs) -> torch.Tensor:
    """exp(-d^2 / (2 w^2)) with d the cosine distance between a 0/1 sample and the all-on vector,
    1 - sqrt(kept / total) (1 when nothing is kept)."""
    z = interpretable.float().flatten()
    distance = 1.0 - torch.sqrt(z.sum() / z.numel())
    return torch.exp(-(distance ** 2) / (2 * LIME_KERNEL_WIDTH ** 2)).reshape(1)


def _surrogate(method: str, model: nn.Module, images: torch.Tensor, target: Target, *, n_samples: int | None,
               segments: int | None, seed: int, baseline, batch_size: int, progress: bool,
               fill: str = "baseline") -> AttributionResult:
    from netreveal.attribution.surrogates import surrogate_coefficients

    if fill not in LIME_FILLS:
        raise NetrevealError(f"LIME fill must be one of {', '.join(LIME_FILLS)}, got {fill!r}")
    _check(images, batch_size)
    device = model_device(model)
    images = images.to(device)
    h, w = images.shape[-2:]
    segments = default_segments(h, w) if segments is None else int(segments)
    n_samples = default_samples(segments) if n_samples is None else int(n_samples)
    if n_samples < 2:
        raise NetrevealError(f"{method} needs at least 2 samples, got {n_samples}")
    labels, fallbacks = superpixels(images, segments)
    layout = conv_layout(model)
    with frozen(model), torch.no_grad():
        targets, probs = class_targets(model, images, target, batch_size, layout, method)
        hidden = (torch.cat([superpixel_means(images[i:i + 1], labels[i]) for i in range(len(images))])
                  if fill == "mean" else make_baseline(images, baseline))
        coefs = surrogate_coefficients(method, model, images, hidden, labels, targets,
                                       n_samples=n_samples, seed=seed, batch_size=batch_size, progress=progress)
    raws = [coef.to(device)[seg] for coef, seg in zip(coefs, labels)]
    raw = torch.stack(raws)
    surrogate = (f"weighted ridge (alpha {LIME_RIDGE_ALPHA}), exponential kernel width {LIME_KERNEL_WIDTH} "
                 "on cosine distance" if method == "lime" else "Shapley-kernel sampling, linear regression")
    return AttributionResult(
        method=method,
        maps=minmax(raw),
        targets=targets.cpu(),
        target_probs=probs.cpu(),
        params={"n_samples": n_samples, "segments": segments, "seed": seed,
                "baseline": "superpixel mean colour" if fill == "mean" else _baseline_name(baseline),
                **({"fill": fill} if method == "lime" else {}),
                "segmentation": {"algorithm": "slic", "n_segments": segments, "compactness": SLIC_COMPACTNESS,
                                 "sigma": default_slic_sigma(h, w), "grid_fallbacks": fallbacks},
                "surrogate": surrogate, "score": "softmax probability",
                "map": "superpixel coefficient at each pixel, min-max"},
        provenance=provenance(seed=seed),
        raw=raw.cpu(),
        extras={"segments": labels.cpu().to(torch.int32), "coefficients": coefs},
    )


def lime(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    n_samples: int | None = None,
    segments: int | None = None,
    seed: int = 0,
    baseline: str | torch.Tensor = "blur",
    fill: str = "baseline",
    batch_size: int = 64,
    progress: bool = False,
) -> AttributionResult:
    """LIME heatmaps (B, H, W) over SLIC superpixels for ``target`` (None: the predicted class, an int
    for all, or one class per image) of ``images`` in [0, 1].

    ``fill``: what a switched-off superpixel shows, ``baseline`` (default: the ``baseline`` image, a
    heavy blur unless given, as the other perturbation methods and the deletion/insertion metrics)
    or ``mean`` (its own mean colour, the lime package's default; see docs/methods/lime.md).
    ``segments`` defaults to :func:`default_segments`, ``n_samples`` to :func:`default_samples`.
    ``raw`` is each pixel's superpixel coefficient; ``extras`` keeps the superpixel labels (B, H, W)
    and each image's coefficients.
    """
    return _surrogate("lime", model, images, target, n_samples=n_samples, segments=segments, seed=seed,
                      baseline=baseline, batch_size=batch_size, progress=progress, fill=fill)


def kernel_shap(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    n_samples: int | None = None,
    segments: int | None = None,
    seed: int = 0,
    baseline: str | torch.Tensor = "blur",
    batch_size: int = 64,
    progress: bool = False,
) -> AttributionResult:
    """KernelSHAP heatmaps (B, H, W) over SLIC superpixels; arguments and result as :func:`lime`.
    The coefficients estimate each superpixel's Shapley value for the target probability."""
    return _surrogate("kernelshap", model, images, target, n_samples=n_samples, segments=segments, seed=seed,
                      baseline=baseline, batch_size=batch_size, progress=progress)
