"""Class activation maps, one template for every variant.

One forward/backward pass per batch taps a layer's activation A (B, K, h, w) and the gradient
g = dS/dA of each image's class logit S. A variant says how to weigh the channels:

    raw = combine(A, g) = sum_k weights(A, g)_k * A_k          (B, h, w), signed
    map = min-max(upsample(ReLU(raw)))                          (B, H, W) in [0, 1]

The ReLU acts at the layer's resolution and the result is upsampled (bilinear, half-pixel centres,
i.e. ``align_corners=False``), as the Grad-CAM definition has it and as pytorch-grad-cam (every
variant) and captum (``LayerGradCam`` with ``relu_attributions=True``, then
``LayerAttribution.interpolate``) compute it. ``relu_at="upsampled"`` keeps the other order
(upsample the signed map, then ReLU): negative evidence then bleeds less into positive cells.

``weights`` is (B, K, 1, 1) for one weight per channel or (B, K, h, w) for one per position; a
variant overrides it (or ``combine``) and nothing else. :class:`GradCAM` is the plain one; the
backward pass stops at the tapped layer (see ``netreveal.model.hooks``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.model.hooks import capture, describe_taps, model_device
from netreveal.model.layers import resolve_layers
from netreveal.provenance import provenance
from netreveal.results import AttributionResult
from netreveal.targets import Target, slice_targets

# where the ReLU acts: on the layer's map before upsampling (the definition) or after upsampling
RELU_AT = ("layer", "upsampled")


def check_relu_at(relu_at: str) -> None:
    """Raise :class:`NetrevealError` unless ``relu_at`` is one of :data:`RELU_AT`."""
    if relu_at not in RELU_AT:
        raise NetrevealError(f"relu_at must be one of {', '.join(RELU_AT)}, got {relu_at!r}")


class CAM:
    """The template: subclasses set ``name`` and override :meth:`weights` (or :meth:`combine`);
    ``params`` records what the variant computes (saved with every result)."""

    name: ClassVar[str] = "cam"
    params: ClassVar[dict] = {}

    def weights(self, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """Channel weights (B, K, 1, 1) or position weights (B, K, h, w)."""
        raise NotImplementedError

    def combine(self, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """The signed map (B, h, w) at the layer's resolution."""
        return (self.weights(activation, gradient) * activation).sum(dim=1)

    def to_map(self, raw: torch.Tensor, size: tuple[int, int], relu: bool = True,
               normalize: bool = True, relu_at: str = "layer") -> torch.Tensor:
        """Maps (B, H, W) at ``size`` from signed layer maps (B, h, w); ``relu_at`` says whether the
        ReLU acts before upsampling (``layer``, the definition) or after it (``upsampled``)."""
        check_relu_at(relu_at)
        maps = raw.clamp_min(0) if relu and relu_at == "layer" else raw
        maps = upsample(maps, tuple(size))
        if relu and relu_at == "upsampled":
            maps = maps.clamp_min(0)
        return minmax(maps) if normalize else maps

    def explain(
        self,
        model: nn.Module,
        images: torch.Tensor,
        layer: str | nn.Module,
        target: Target = None,
        *,
        relu: bool = True,
        normalize: bool = True,
        relu_at: str = "layer",
        batch_size: int = 32,
        call: int = -1,
        progress: bool = False,
    ) -> AttributionResult:
        """Heatmaps (B, H, W) at the input size for ``images`` (B, 3, H, W).

        ``target``: None (predicted class), an int, one class per image, or a callable
        ``logits -> (B,) scores``. ``relu`` keeps positive evidence only; ``normalize`` scales each
        map to [0, 1]; with both off the signed map is returned as computed. ``relu_at``: ``layer``
        (default) applies the ReLU at the layer's resolution and then upsamples, ``upsampled`` the
        other way round (see the module docstring). ``raw`` holds the signed maps at the layer's
        resolution; ``call`` picks the call of a layer that runs several times.
        """
        check_relu_at(relu_at)
        if isinstance(target, (list, tuple, torch.Tensor)) and len(target) != images.shape[0]:
            raise NetrevealError(f"got {len(target)} targets for a batch of {images.shape[0]} images")
        if images.shape[0] == 0:
            raise NetrevealError("no image given")
        images = images.to(model_device(model))  # once: every batch below runs on the model's device
        ((layer_name, _),) = resolve_layers(model, layer, example=images[:1])
        raws, targets, probs, layouts = [], [], [], {}
        starts = range(0, images.shape[0], batch_size)
        for start in tqdm(starts, desc=self.name, disable=not progress, unit="batch"):
            stop = min(start + batch_size, images.shape[0])
            cap = capture(model, images[start:stop], layer_name, slice_targets(target, start, stop), call=call)
            (act,), (grad,) = cap.activations.values(), cap.gradients.values()
            layouts = cap.layouts
            raws.append(self.combine(act, grad))
            targets.append(cap.targets)
            p = cap.logits.softmax(dim=1)
            prob = p.gather(1, cap.targets.clamp_min(0)[:, None]).squeeze(1)
            probs.append(torch.where(cap.targets >= 0, prob, torch.full_like(prob, float("nan"))))  # NaN: callable
        raw = torch.cat(raws)
        tap = describe_taps(model, images[:1], layouts).get(layer_name, "")
        params = {"layer": layer_name, "tap": tap, "relu": relu, "relu_at": relu_at, "normalize": normalize,
                  "call": call, "score": "logit", **self.params}
        return AttributionResult(
            method=self.name,
            maps=self.to_map(raw, tuple(images.shape[-2:]), relu, normalize, relu_at),
            targets=torch.cat(targets),
            target_probs=torch.cat(probs),
            params=params,
            provenance=provenance(),
            raw=raw,
        )


class GradCAM(CAM):
    """Grad-CAM (Selvaraju et al. 2017): each channel weighs the mean of its gradient,
    alpha_k = mean_xy dS/dA^k_xy."""

    name = "gradcam"

    def weights(self, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.mean(dim=(2, 3), keepdim=True)
