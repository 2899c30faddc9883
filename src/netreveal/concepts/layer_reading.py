"""Reading a frozen backbone at chosen layers: where to read (layer specs, default layers) and how.

A *layer spec* names where to read: a module's output (``layer4``) or its input (``avgpool@input``,
used for "the map the global pooling sees"). What is read is turned into a feature map
(B, D, h, w):
- 4-D outputs are channels-first, except in a channels-last model (timm ``output_fmt="NHWC"``,
  torchvision Swin: see :mod:`netreveal.model.grids`), where they are read channels-last;
  ``layout="nchw"`` / ``"nhwc"`` overrides;
- 3-D token sequences (B, T, D) of a ViT drop their prefix tokens (class / register / distillation
  tokens: ``prefix_tokens``, found automatically from ``num_prefix_tokens`` / ``class_token`` or
  from the token count) and the remaining tokens are laid out row-major on the patch grid.

The forward pass stops as soon as everything asked for is read (a truncated forward), so layers
above the read point cost nothing. The backbone is put in eval mode with frozen parameters for
each call and restored afterwards.

Default layers, found by tracing one forward pass (:func:`find_feature_layer`):
1. the input of the last global pooling module (``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d``)
   when no spatial map is computed after it (ResNet, ConvNeXt, VGG, torchvision Swin, the demo CNN);
2. otherwise the last module whose output is a spatial map (h*w > 1) (DenseNet: ``features``) or
   a token sequence that fits the patch grid (ViT: ``encoder``), whichever runs later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.grids import NHWC, model_grid
from netreveal.model.grids import grid_layout as _grid_layout
from netreveal.model.hooks import HookList, frozen
from netreveal.model.layers import get_module, module_names, named_root, resolve_layers
from netreveal.model.sites import split_call

POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
LAYOUTS = ("auto", "nchw", "nhwc", "tokens", "vector")


@dataclass(frozen=True)
class LayerSpec:
    """Where to read in the backbone: ``name`` (dotted), ``port`` (``output`` / ``input``), and how
    to read it: ``layout`` (``nchw``, ``nhwc``, ``tokens`` or ``vector``) and ``prefix_tokens``."""

    name: str
    port: str = "output"
    layout: str = "nchw"
    prefix_tokens: int = 0

    def __str__(self) -> str:
        return self.name + ("@input" if self.port == "input" else "")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "port": self.port,
            "layout": self.layout,
            "prefix_tokens": self.prefix_tokens,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LayerSpec:
        return cls(str(d["name"]), str(d["port"]), str(d["layout"]), int(d["prefix_tokens"]))


class _Stop(Exception):
    """Raised by a hook once every requested tensor is read: ends the forward pass early."""


def _parse_name(
    model: nn.Module, layer: str | nn.Module, example: torch.Tensor | None
) -> tuple[str, str]:
    if isinstance(layer, nn.Module):
        ((name, _),) = resolve_layers(model, layer)
        return name, "output"
    text = layer.strip()
    port = "output"
    if text.endswith("@input"):
        text, port = text[: -len("@input")], "input"
    elif text.endswith("@output"):
        text = text[: -len("@output")]
    resolved = resolve_layers(model, text, example=example)
    if len(resolved) != 1:
        raise NetrevealError(f"layer {layer!r} names {len(resolved)} layers; name exactly one")
    return resolved[0][0], port


def read_layers(
    model: nn.Module,
    images: torch.Tensor,
    specs: Sequence[LayerSpec],
    *,
    grad_from: int | None = None,
    stop: bool = True,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Run the backbone on ``images`` and return the raw tensors at ``specs`` (in order) and the
    logits (``None`` when the forward pass stopped early).

    ``grad_from`` (index into ``specs``): that tensor is made a leaf requiring grad and fed on, so
    later reads and the logits are differentiable with respect to it (parameters stay frozen).
    Without it everything runs under ``no_grad``. ``stop=False`` runs the whole model.
    """
    root = named_root(model)
    modules = dict(root.named_modules())
    found: list[torch.Tensor | None] = [None] * len(specs)
    wanted = [split_call(spec.name)[1] or 0 for spec in specs]  # name#k: call k, else the first call
    seen_calls = [0] * len(specs)

    def record(i: int, value):
        if not isinstance(value, torch.Tensor):
            raise NetrevealError(f"layer {specs[i]} gives {type(value).__name__}, not a tensor")
        seen_calls[i] += 1
        if found[i] is not None or seen_calls[i] - 1 != wanted[i]:  # keep the wanted call only
            return None
        if grad_from == i:
            value = value.detach().requires_grad_(True)
        found[i] = value
        if stop and all(t is not None for t in found):
            raise _Stop
        # the network goes on with a copy, so in-place ops downstream cannot change what we read
        return value.clone()

    def out_hook(i):
        def hook(module, args, out):
            return record(i, out)

        return hook

    def in_hook(i):
        def hook(module, args):
            if not args:
                raise NetrevealError(
                    f"layer {specs[i].name!r} is called without a positional input"
                )
            new = record(i, args[0])
            return None if new is None else (new, *args[1:])

        return hook

    logits = None
    with frozen(model), torch.enable_grad() if grad_from is not None else torch.no_grad(), HookList() as hooks:
        for i, spec in enumerate(specs):
            module = modules.get(spec.name)
            if module is None or spec.name == "":
                module = get_module(model, spec.name)  # raises with close names
            if spec.port == "input":
                hooks.add(module, in_hook(i), "forward_pre")
            else:
                hooks.add(module, out_hook(i))
        try:
            logits = model(images)
        except _Stop:
            logits = None
    missing = [str(s) for s, t in zip(specs, found) if t is None]
    if missing:
        raise NetrevealError(f"layer {missing[0]} did not run in the forward pass")
    return [t for t in found if t is not None], logits


def _grid_shape(tokens: int, image_hw: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) with h * w == tokens and h / w as close as possible to the image's aspect ratio."""
    H, W = image_hw
    best = None
    for h in range(1, tokens + 1):
        if tokens % h:
            continue
        w = tokens // h
        err = abs(math.log((h / w) / (H / W)))
        if best is None or err < best[0] - 1e-9:
            best = (err, h, w)
    if best is None or best[0] > 0.2:
        return None
    return best[1], best[2]


def prefix_token_count(model: nn.Module, tokens: int, image_hw: tuple[int, int]) -> int:
    """How many leading tokens are not patches: ``num_prefix_tokens`` (timm), 1 for a model with a
    ``class_token`` (torchvision), else 0 when the count is a square grid, 1 when count-1 is."""
    root = named_root(model)
    for obj in (model, root):
        n = getattr(obj, "num_prefix_tokens", None)
        if isinstance(n, int):
            return n
        if isinstance(getattr(obj, "class_token", None), torch.Tensor):
            return 1
    for n in (0, 1):
        side = math.isqrt(tokens - n)
        if tokens - n > 0 and side * side == tokens - n:
            return n
    for n in range(min(tokens, 9)):
        if _grid_shape(tokens - n, image_hw) is not None:
            return n
    raise NetrevealError(f"cannot lay {tokens} tokens on a patch grid; pass prefix_tokens")


def to_feature_map(raw: torch.Tensor, spec: LayerSpec, image_hw: tuple[int, int]) -> torch.Tensor:
    """A raw tensor read at ``spec`` as a (B, D, h, w) feature map (tokens laid on the patch grid).

    A ``vector`` spec gives (B, D, 1, 1)."""
    if spec.layout == "nchw":
        if raw.dim() != 4:
            raise NetrevealError(
                f"layer {spec} gives a {raw.dim()}-D tensor, not a (B, C, H, W) map"
            )
        return raw
    if spec.layout == "nhwc":
        if raw.dim() != 4:
            raise NetrevealError(
                f"layer {spec} gives a {raw.dim()}-D tensor, not a (B, H, W, C) map"
            )
        return raw.permute(0, 3, 1, 2)
    if spec.layout == "tokens":
        if raw.dim() != 3:
            raise NetrevealError(f"layer {spec} gives a {raw.dim()}-D tensor, not (B, tokens, D)")
        patches = raw[:, spec.prefix_tokens :]
        grid = _grid_shape(patches.shape[1], image_hw)
        if grid is None:
            raise NetrevealError(
                f"{patches.shape[1]} patch tokens at {spec} do not fit a grid for a {image_hw} image"
            )
        b, _n, d = patches.shape
        return patches.transpose(1, 2).reshape(b, d, grid[0], grid[1])
    if spec.layout == "vector":
        flat = raw.flatten(1)
        return flat[:, :, None, None]
    raise NetrevealError(f"unknown layout {spec.layout!r}; choose one of {', '.join(LAYOUTS)}")


@torch.no_grad()
def trace_events(
    model: nn.Module, example: torch.Tensor
) -> list[tuple[str, nn.Module, str, tuple]]:
    """(name, module, port, shape) for every module input of pooling layers and every module
    output, in the order they happen in one forward pass."""
    names = module_names(model)
    events: list[tuple[str, nn.Module, str, tuple]] = []

    def pre(mod, args):
        if args and isinstance(args[0], torch.Tensor):
            events.append((names[mod], mod, "input", tuple(args[0].shape)))

    def post(mod, args, out):
        if isinstance(out, torch.Tensor):
            events.append((names[mod], mod, "output", tuple(out.shape)))

    root = named_root(model)
    with HookList() as hooks:
        for module, name in names.items():
            if module is root or name == "":
                continue
            if isinstance(module, POOLING):
                hooks.add(module, pre, "forward_pre")
            hooks.add(module, post)
        with frozen(model):
            model(example[:1])
    return events


def map_layout(model: nn.Module, shape: tuple, module: nn.Module | None, name: str = "") -> str:
    """``nhwc`` for a channels-last 4-D output of a channels-last model, else ``nchw``."""
    return NHWC if _grid_layout(model_grid(model), tuple(shape), module, name).kind == NHWC else "nchw"


def find_feature_layer(model: nn.Module, example: torch.Tensor) -> LayerSpec:
    """The default feature map of a backbone (see the module docstring for the rules)."""
    events = trace_events(model, example)
    image_hw = tuple(example.shape[-2:])
    channels_last = model_grid(model).channels_last

    def layout_of(module: nn.Module, shape: tuple) -> str:
        return map_layout(model, shape, module) if channels_last else "nchw"

    def spatial(shape: tuple, module: nn.Module | None = None) -> bool:
        if len(shape) != 4:
            return False
        h, w = (shape[1], shape[2]) if layout_of(module, shape) == NHWC else (shape[2], shape[3])
        return h * w > 1

    last_pool = max(
        (i for i, e in enumerate(events) if e[2] == "input" and len(e[3]) == 4), default=None
    )
    if last_pool is not None:
        later_maps = [
            e
            for e in events[last_pool + 1 :]
            if e[2] == "output" and spatial(e[3], e[1]) and e[1] is not events[last_pool][1]
        ]
        if not later_maps:
            return LayerSpec(events[last_pool][0], "input", "nchw")
    for name, module, port, shape in reversed(events):
        if port != "output":
            continue
        if spatial(shape, module):
            return LayerSpec(name, "output", layout_of(module, shape))
        if len(shape) == 3 and shape[1] > 1:
            try:
                n = prefix_token_count(model, shape[1], image_hw)
            except NetrevealError:
                continue
            return LayerSpec(name, "output", "tokens", n)
    raise NetrevealError("found no spatial feature map or token grid in this model; name a layer")


def find_classifier(model: nn.Module, example: torch.Tensor) -> tuple[LayerSpec, nn.Linear]:
    """The model's final linear classifier (the last ``nn.Linear`` to run, whose output must be the
    logits) and the spec of its input, the penultimate feature vector."""
    events = trace_events(model, example)
    linear = [e for e in events if e[2] == "output" and isinstance(e[1], nn.Linear)]
    if not linear:
        raise NetrevealError(
            "the model has no nn.Linear classifier; name a layer and use faithful='linear'"
        )
    name, module = linear[-1][0], linear[-1][1]
    spec = LayerSpec(name, "input", "vector")
    (vec,), logits = read_layers(model, example[:2], [spec], stop=False)
    with torch.no_grad():
        same = logits is not None and torch.allclose(module(vec), logits, atol=1e-5, rtol=1e-4)
    if not same:
        raise NetrevealError(
            f"the output of {name!r} is not the model's logits; name a layer and use faithful='linear'"
        )
    return spec, module


def layer_spec(
    model: nn.Module,
    layer: str | nn.Module | LayerSpec | None,
    example: torch.Tensor,
    *,
    layout: str = "auto",
    prefix_tokens: int | None = None,
) -> LayerSpec:
    """Resolve a user's layer choice (None = :func:`find_feature_layer`) to a :class:`LayerSpec`.

    ``layout="auto"`` reads 4-D tensors as channels-first and 3-D ones as tokens; ``prefix_tokens``
    overrides the automatic count of non-patch tokens.
    """
    if layout not in LAYOUTS:
        raise NetrevealError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if isinstance(layer, LayerSpec):
        return layer
    if layer is None:
        spec = find_feature_layer(model, example)
        if layout not in ("auto", spec.layout):
            spec = LayerSpec(spec.name, spec.port, layout, spec.prefix_tokens)
    else:
        name, port = _parse_name(model, layer, example)
        (raw,), _ = read_layers(model, example[:1], [LayerSpec(name, port)])
        chosen = layout
        if layout == "auto":
            chosen = {4: "nchw", 3: "tokens", 2: "vector"}.get(raw.dim())
            if chosen == "nchw":
                chosen = map_layout(model, tuple(raw.shape), get_module(model, name), name)
            if chosen is None:
                raise NetrevealError(
                    f"layer {layer!r} gives a {raw.dim()}-D tensor; expected a map, tokens or a vector"
                )
        spec = LayerSpec(name, port, chosen, 0)
        if chosen == "tokens":
            n = (
                prefix_tokens
                if prefix_tokens is not None
                else prefix_token_count(model, raw.shape[1], tuple(example.shape[-2:]))
            )
            spec = LayerSpec(name, port, chosen, int(n))
    if prefix_tokens is not None and spec.layout == "tokens":
        spec = LayerSpec(spec.name, spec.port, spec.layout, int(prefix_tokens))
    return spec
