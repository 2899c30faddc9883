"""SmoothGrad (Smilkov et al. 2017): the mean of an attribution over noisy copies of the image,

    raw(x) = 1/n sum_s A(x + sigma z_s),   z_s ~ N(0, I),   sigma = noise * (max(x) - min(x))

for any attribution A (the input gradient by default; integrated gradients, a CAM...). The class is
fixed on the clean image, so every copy explains the same class. ``z_s`` is drawn (1, C, H, W) per
copy, in order, from a CPU generator seeded with ``seed``; every image of a batch gets the same
sequence, so an image's result depends only on the image, its class and the seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, check_count, class_indices, mark_checked


def smoothgrad_noise(samples: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The standard normal draws z_s (samples, C, H, W) SmoothGrad uses for ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.stack([torch.randn((1, *shape), generator=gen)[0] for _ in range(samples)])


def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    explain: Callable[[torch.Tensor, torch.Tensor], AttributionResult],
    to_map: Callable[[torch.Tensor], torch.Tensor],
    target: Target = None,
    *,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
    base: str = "",
    batch_size: int = 32,
    progress: bool = False,
) -> AttributionResult:
    """SmoothGrad of the attribution ``explain(noisy_images, classes)`` (its ``raw``) over
    ``samples`` noisy copies of ``images`` (B, 3, H, W) in [0, 1]; ``to_map`` turns the mean raw
    attribution into heatmaps (B, H, W). ``target``: None (predicted class), an int or one class per
    image; ``base`` names the attribution in the result's params."""
    if samples < 1:
        raise NetrevealError(f"SmoothGrad needs at least one sample, got {samples}")
    if noise < 0:
        raise NetrevealError(f"SmoothGrad noise must be 0 or more, got {noise}")
    check_count(target, len(images))
    images = images.to(model_device(model))
    with frozen(model), torch.no_grad():
        logits = torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    # checked once here: the copies below explain the same classes without reading them again
    classes = mark_checked(class_indices(target, logits, "SmoothGrad"), logits.shape[1])
    probs = logits.softmax(dim=1).gather(1, classes[:, None]).squeeze(1)
    flat = images.flatten(1)
    sigma = noise * (flat.amax(dim=1) - flat.amin(dim=1))  # (B,)
    draws = smoothgrad_noise(samples, tuple(images.shape[1:]), seed).to(images.device, images.dtype)
    total, first = None, None
    for s in tqdm(range(samples), desc=f"SmoothGrad ({base})", disable=not progress, unit="copy"):
        noisy = images + sigma[:, None, None, None] * draws[s][None]
        result = explain(noisy, classes)
        if result.raw is None:
            raise NetrevealError(f"{base or 'the base method'} gives no raw attribution to average")
        total = result.raw.detach().float() if total is None else total + result.raw.detach().float()
        if first is None:
            first = result
    raw = total / samples
    return AttributionResult(
        method="smoothgrad",
        maps=to_map(raw),
        targets=classes.cpu(),
        target_probs=probs.cpu(),
        params={"smoothgrad": {"base": base, "samples": samples, "noise": noise, "seed": seed,
                               "sigma": "noise * (max(x) - min(x)) per image"},
                "base_params": first.params},
        provenance=provenance(seed=seed),
        raw=raw,
    )
