"""Which layers an XNN reads: the activation it embeds (and whether the model's own classifier
reads it), the spatial map its heatmaps are computed on, and reading activation vectors."""

from __future__ import annotations

import torch
from torch import nn

from netreveal.concepts.layer_reading import (
    LayerSpec,
    find_classifier,
    find_feature_layer,
    layer_spec,
    prefix_token_count,
    read_layers,
    to_feature_map,
    trace_events,
)
from netreveal.errors import NetrevealError

FAITHFUL = ("auto", "head", "linear")


def activation_vector(
    raw: torch.Tensor, spec: LayerSpec, image_hw: tuple[int, int]
) -> torch.Tensor:
    """A layer's output as one vector per image: vectors as they are, maps and token grids
    averaged over positions."""
    if spec.layout == "vector":
        return raw.flatten(1)
    return to_feature_map(raw, spec, image_hw).mean(dim=(2, 3))


def read_activations(
    model: nn.Module, spec: LayerSpec, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation vectors (B, D) at ``spec`` and the model's logits (B, C), from one forward pass."""
    (raw,), logits = read_layers(model, images, [spec], stop=False)
    return activation_vector(raw, spec, tuple(images.shape[-2:])), logits


def resolve_xnn_layer(
    model: nn.Module, layer, example: torch.Tensor, faithful: str = "auto"
) -> tuple[LayerSpec, nn.Linear | None, str]:
    """The activation spec, the classifier for ``head`` mode (or None) and the mode chosen."""
    if faithful not in FAITHFUL:
        raise NetrevealError(f"faithful must be one of {', '.join(FAITHFUL)}, got {faithful!r}")
    try:
        cls_spec, classifier = find_classifier(model, example)
    except NetrevealError:
        if layer is None or faithful == "head":
            raise
        cls_spec, classifier = None, None
    spec = cls_spec if layer is None else layer_spec(model, layer, example)
    if classifier is not None and faithful in ("auto", "head") and spec != cls_spec:
        f, logits = read_activations(model, spec, example[:2])
        with torch.no_grad():
            fits = f.shape[1] == classifier.in_features and torch.allclose(
                classifier(f), logits, atol=1e-4, rtol=1e-4
            )
        if not fits:
            if faithful == "head":
                raise NetrevealError(
                    f"the classifier does not read layer {spec} (pooled); use faithful='linear'"
                )
            classifier = None
    mode = "head" if (faithful in ("auto", "head") and classifier is not None) else "linear"
    return spec, (classifier if mode == "head" else None), mode


def _reaches(model: nn.Module, spec: LayerSpec, act: LayerSpec, example: torch.Tensor) -> bool:
    """Whether the activation ``act`` depends on the feature-map cells read at ``spec``."""
    hw = tuple(example.shape[-2:])
    (raw, raw_act), _ = read_layers(model, example, [spec, act], grad_from=0)
    with torch.enable_grad():
        f = activation_vector(raw_act, act, hw)
        if not f.requires_grad:
            return False
        # a fixed random direction: a plain sum can be constant (e.g. after a LayerNorm)
        r = torch.randn(f.shape, generator=torch.Generator().manual_seed(0)).to(f)
        (grad,) = torch.autograd.grad((f * r).sum(), raw, allow_unused=True)
    return grad is not None and bool(to_feature_map(grad, spec, hw).abs().sum() > 0)


def find_map_layer(
    model: nn.Module, act: LayerSpec, example: torch.Tensor, tries: int = 24
) -> LayerSpec | None:
    """The feature map for x-feature heatmaps: the backbone's final feature map when the
    activation depends on its cells (CNNs), else the last token layer whose patch tokens it
    depends on (in a ViT the last block's input norm: attention is where patch tokens reach the
    class token). None when nothing qualifies."""
    try:
        first = find_feature_layer(model, example)
    except NetrevealError:
        first = None
    if first is not None and _reaches(model, first, act, example):
        return first
    hw = tuple(example.shape[-2:])
    seen: set[str] = set()
    for name, _, port, shape in reversed(trace_events(model, example)):
        if port != "output" or len(shape) != 3 or name in seen:
            continue
        seen.add(name)
        if len(seen) > tries:
            break
        try:
            n = prefix_token_count(model, shape[1], hw)
        except NetrevealError:
            continue
        spec = LayerSpec(name, "output", "tokens", n)
        if _reaches(model, spec, act, example):
            return spec
    return None
