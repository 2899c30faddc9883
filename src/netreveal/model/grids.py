"""Feature grids from whatever a layer outputs: channels-first maps, token sequences, channels-last maps.

Every method that reads a layer works on a feature map (B, C, h, w). A layer gives one of:
- a channels-first map (B, C, h, w) (convolutions): used as it is;
- a token sequence (B, P + N, C) (vision transformers): the P prefix tokens (class, register and
  distillation tokens) are dropped and the N patch tokens laid row-major on the patch grid;
- a channels-last map (B, h, w, C) (Swin stages and blocks): permuted to (B, C, h, w).

How to read a layer comes from the model (:func:`grid_layout`): the prefix-token count from timm's
``num_prefix_tokens`` or torchvision's ``class_token``; the patch grid from timm's
``patch_embed.grid_size`` or torchvision's ``image_size // patch_size``, else the square root of the
token count when that is a whole number; channels-last from timm's ``output_fmt == "NHWC"`` or a
torchvision Swin. :func:`to_grid` gives the grid as a view; :func:`from_grid` rebuilds the layer's
own layout from a grid (and the untouched prefix tokens), so a tap can feed the network from the
grid and gradients arrive at the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from netreveal.errors import NetrevealError

NCHW, TOKENS, NHWC, RAW = "nchw", "tokens", "nhwc", "raw"
# Modules whose 4-D output is channels-first even inside a channels-last model.
_CHANNELS_FIRST = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class ModelGrid:
    """What a model says about its token and map layouts (None: it does not say)."""

    prefix_tokens: int | None = None
    patch_grid: tuple[int, int] | None = None
    channels_last: bool = False


@dataclass(frozen=True)
class Layout:
    """How one layer's output becomes a grid: ``kind`` (nchw, tokens, nhwc), the prefix tokens to
    drop and the grid (h, w) of a token layout."""

    kind: str
    prefix_tokens: int = 0
    grid: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.kind == TOKENS:
            h, w = self.grid or (0, 0)
            dropped = f", {self.prefix_tokens} prefix token(s) dropped" if self.prefix_tokens else ""
            return f"patch tokens on a {h}x{w} grid{dropped}"
        return {NHWC: "channels-last map", RAW: "tensor"}.get(self.kind, "feature map")


def _pair(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def model_grid(model: nn.Module) -> ModelGrid:
    """The token and map layout a model declares (its wrapper and the wrapped network are asked)."""
    prefix, grid, channels_last = None, None, False
    for obj in (getattr(model, "netreveal_inner", None), model):
        if obj is None:
            continue
        if prefix is None:
            n = getattr(obj, "num_prefix_tokens", None)
            if isinstance(n, int):
                prefix = n
            elif isinstance(getattr(obj, "class_token", None), torch.Tensor):  # torchvision ViT
                prefix = 1
        if grid is None:
            grid = _pair(getattr(getattr(obj, "patch_embed", None), "grid_size", None))
        if grid is None:
            size, patch = _pair(getattr(obj, "image_size", None)), _pair(getattr(obj, "patch_size", None))
            if size and patch and patch[0] > 0 and patch[1] > 0:
                grid = (size[0] // patch[0], size[1] // patch[1])
        channels_last = channels_last or getattr(obj, "output_fmt", None) == "NHWC" or _torchvision_swin(obj)
    return ModelGrid(prefix, grid, channels_last)


def _torchvision_swin(obj: nn.Module) -> bool:
    try:
        from torchvision.models.swin_transformer import SwinTransformer
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return False
    return isinstance(obj, SwinTransformer)


def _channels_first_module(module: nn.Module) -> bool:
    if isinstance(module, _CHANNELS_FIRST):
        return True
    dims = getattr(module, "dims", None)  # torchvision's Permute([0, 3, 1, 2]) turns NHWC into NCHW
    return type(module).__name__ == "Permute" and list(dims or []) == [0, 3, 1, 2]


def grid_layout(info: ModelGrid, shape: tuple[int, ...], module: nn.Module | None, name: str) -> Layout:
    """The layout of an output of ``shape`` from ``module``; a NetrevealError naming the layer when
    it is no grid (a vector, or tokens that fit no patch grid)."""
    if len(shape) == 4:
        if info.channels_last and not (module is not None and _channels_first_module(module)):
            return Layout(NHWC)
        return Layout(NCHW)
    if len(shape) == 3:
        tokens = int(shape[1])
        prefix = info.prefix_tokens
        if prefix is not None and info.patch_grid and tokens - prefix == info.patch_grid[0] * info.patch_grid[1]:
            return Layout(TOKENS, prefix, info.patch_grid)
        for n in ([prefix] if prefix is not None else [0, 1]):
            side = math.isqrt(max(tokens - n, 0))
            if tokens - n > 0 and side * side == tokens - n:
                return Layout(TOKENS, n, (side, side))
        raise NetrevealError(f"layer {name!r} outputs {tokens} tokens {tuple(shape)}, which fit no patch grid "
                             f"(model grid {info.patch_grid}, {prefix} prefix tokens)")
    what = "a vector" if len(shape) == 2 else f"a {len(shape)}-D tensor"
    raise NetrevealError(f"layer {name!r} outputs {what} {tuple(shape)}, not a feature map (B, C, H, W), "
                         "a token sequence (B, N, C) or a channels-last map (B, H, W, C)")


def tap_layout(info: ModelGrid, shape: tuple[int, ...], module: nn.Module | None, name: str) -> Layout:
    """:func:`grid_layout`, or the ``raw`` layout (the output kept as it is) for an output that is
    no grid, such as a classifier's vector: a tap can read any tensor, a method that needs a grid
    checks for one (:func:`netreveal.model.layers.check_feature_maps`)."""
    try:
        return grid_layout(info, shape, module, name)
    except NetrevealError:
        return Layout(RAW)


def to_grid(out: torch.Tensor, layout: Layout) -> torch.Tensor:
    """The (B, C, h, w) grid of a layer output (a view when the layout allows)."""
    if layout.kind in (NCHW, RAW):
        return out
    if layout.kind == NHWC:
        return out.permute(0, 3, 1, 2)
    h, w = layout.grid
    patches = out[:, layout.prefix_tokens:]
    return patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)


def from_grid(grid: torch.Tensor, out: torch.Tensor, layout: Layout) -> torch.Tensor:
    """A new tensor in the layer's own layout whose values are ``grid`` (and ``out``'s prefix
    tokens): what the network goes on with after a tap, so gradients flow to ``grid``."""
    if layout.kind in (NCHW, RAW):
        return grid.clone()
    if layout.kind == NHWC:
        return grid.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
    tokens = grid.flatten(2).transpose(1, 2)
    return torch.cat([out[:, : layout.prefix_tokens], tokens], dim=1)
