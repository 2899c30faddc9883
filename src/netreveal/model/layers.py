"""Naming layers: module objects, dotted names, and selectors such as ``last:9``.

Selectors are resolved by tracing one forward pass and recording the order in which modules run,
because ``named_modules`` order is declaration order, which need not be execution order.

Selector kinds: a module type (``last:3:Linear``); ``block`` (transformer blocks on a transformer,
residual blocks elsewhere) and ``relu`` (post-activation points), see :mod:`netreveal.model.sites`.
Without a kind, ``last:N`` counts Conv2d layers, or transformer blocks on a transformer. ``auto:N``
is the model's default: see :mod:`netreveal.model.defaults`. ``name#k`` taps call ``k`` of a module
that runs several times.
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Callable, Sequence

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.hook_list import hooks_on
from netreveal.model.sites import model_sites, split_call

_SELECTOR = re.compile(r"^(last|first|all|auto)(?::(\d+))?(?::([A-Za-z_][A-Za-z0-9_]*))?$")
SITE_KINDS = ("block", "relu")


def named_root(model: nn.Module) -> nn.Module:
    """The module layer names are relative to: a wrapper (e.g. one that adds input normalisation)
    names its wrapped network with ``netreveal_inner`` so users keep the network's own layer names."""
    return getattr(model, "netreveal_inner", model)


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Map every submodule to its dotted name (the first name when a module is registered twice)."""
    names: dict[nn.Module, str] = {}
    for name, module in named_root(model).named_modules(remove_duplicate=False):
        names.setdefault(module, name)
    return names


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted ``name`` (``name#k``: the module of call ``k``); an unknown name raises
    an error listing the closest names."""
    name, _ = split_call(name)
    modules = dict(named_root(model).named_modules())
    if name in modules and name != "":
        return modules[name]
    candidates = [n for n in modules if n]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise NetrevealError(f"unknown layer {name!r}{hint}")


# Traces are cached per model, input shape and module type, so a selector such as ``last:1`` costs
# one extra forward pass once, not on every call. The key includes the module count, so adding or
# replacing submodules invalidates it.
_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trace_order(model: nn.Module, example: torch.Tensor, kind: type[nn.Module] = nn.Conv2d) -> list[str]:
    """Names of the modules of type ``kind`` in the order of their first call in a forward pass."""
    key = (kind, tuple(example.shape[1:]), example.dtype, str(example.device),
           sum(1 for _ in model.modules()))
    cached = _TRACES.setdefault(model, {})
    if key not in cached:
        cached[key] = _trace(model, example, kind)
    return list(cached[key])


@torch.no_grad()
def _observe(
    model: nn.Module,
    example: torch.Tensor,
    named: Sequence[tuple[str, nn.Module]],
    hook_factory: Callable[[str], Callable],
) -> None:
    """One eval-mode forward pass on ``example[:1]`` (on the model's device) with
    ``hook_factory(name)`` on each named module; the hooks are removed and ``model.training``
    restored afterwards, also on error."""
    from netreveal.model.hooks import model_device  # hooks imports this module

    with hooks_on(named, hook_factory):
        was_training = model.training
        model.eval()
        try:
            model(example[:1].to(model_device(model, example.device)))
        finally:
            model.train(was_training)


def _trace(model: nn.Module, example: torch.Tensor, kind: type[nn.Module]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def make_hook(name: str) -> Callable:
        def hook(mod: nn.Module, args: tuple, out: object) -> None:
            if name not in seen:
                seen.add(name)
                order.append(name)

        return hook

    named = [(name, module) for module, name in module_names(model).items() if isinstance(module, kind)]
    _observe(model, example, named, make_hook)
    return order


def _kind_from_name(name: str | None) -> type[nn.Module]:
    if name is None:
        return nn.Conv2d
    kind = getattr(nn, name, None)
    if not (isinstance(kind, type) and issubclass(kind, nn.Module)):
        raise NetrevealError(f"unknown module type {name!r} in layer selector; "
                             f"use a torch.nn type or one of {', '.join(SITE_KINDS)}")
    return kind


def selector_order(model: nn.Module, example: torch.Tensor, kind_name: str | None) -> list[str]:
    """Names a selector of kind ``kind_name`` counts, in forward order (see the module docstring)."""
    if kind_name in SITE_KINDS or kind_name is None:
        sites = model_sites(model, example)
        if kind_name == "relu":
            return [site.name for site in sites.relu]
        if sites.transformer:
            return list(sites.transformer_blocks)
        if kind_name == "block":
            return [site.name for site in sites.residual_blocks]
    return trace_order(model, example, _kind_from_name(kind_name))


def resolve_layers(
    model: nn.Module,
    layers: str | nn.Module | Sequence[str | nn.Module],
    example: torch.Tensor | None = None,
) -> list[tuple[str, nn.Module]]:
    """Turn a layer spec into ``[(name, module), ...]``.

    ``layers`` may be a module, a dotted name, a comma-separated list of names, a list of either, or a
    selector: ``last:N`` / ``first:N`` / ``all`` with an optional kind (``last:3:Linear``,
    ``last:9:block``, ``last:3:relu``; default: Conv2d, transformer blocks on a transformer) or
    ``auto:N``. Selectors need ``example`` (one input batch) to trace the order.
    """
    names = module_names(model)
    if isinstance(layers, nn.Module):
        layers = [layers]
    elif isinstance(layers, str):
        match = _SELECTOR.match(layers.strip())
        if match:
            if example is None:
                raise NetrevealError(f"layer selector {layers!r} needs an example input to trace")
            which, count, kind_name = match.groups()
            if which == "auto":
                from netreveal.model.defaults import default_layers

                if kind_name is not None:
                    raise NetrevealError(f"layer selector {layers!r}: auto:N takes no kind")
                chosen = default_layers(model, example, int(count) if count else 1)
                return [(name, get_module(model, name)) for name in chosen]
            order = selector_order(model, example, kind_name)
            if not order:
                raise NetrevealError(f"layer selector {layers!r} matched no layer in this model")
            if which == "all":
                chosen = order
            else:
                n = int(count) if count else 1
                if n < 1:
                    raise NetrevealError(f"layer selector {layers!r} must select at least one layer")
                chosen = order[-n:] if which == "last" else order[:n]
            return [(name, get_module(model, name)) for name in chosen]
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    resolved: list[tuple[str, nn.Module]] = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            if layer not in names:
                raise NetrevealError(f"layer {type(layer).__name__} is not a submodule of the model")
            resolved.append((names[layer], layer))
        else:
            resolved.append((layer, get_module(model, layer)))
    if not resolved:
        raise NetrevealError("no layer given")
    return resolved


def check_feature_maps(
    model: nn.Module,
    layers: str | nn.Module | Sequence[str | nn.Module],
    example: torch.Tensor,
    purpose: str = "this method",
    *,
    gradient: bool = False,
) -> list[tuple[str, nn.Module]]:
    """:func:`resolve_layers`, then one forward pass on ``example`` to check that every layer
    gives a feature grid: a map (B, C, H, W), a token sequence (B, N, C) that fits the patch grid, or
    a channels-last map (B, H, W, C) (see :mod:`netreveal.model.grids`). A vector, a tuple or tokens
    that fit no grid are a NetrevealError naming the layer and what it gives. With ``gradient``, a
    token layer whose patch tokens do not reach the class score (the last block of a class-token
    ViT) is an error too: its gradient-weighted maps would be zero."""
    from netreveal.model.grids import grid_layout, model_grid

    resolved = resolve_layers(model, layers, example=example)
    outputs: dict[str, object] = {}

    def make_hook(name: str) -> Callable:
        def hook(mod: nn.Module, args: tuple, out: object) -> None:
            outputs.setdefault(name, out)

        return hook

    with torch.no_grad():
        _observe(model, example, resolved, make_hook)
    info = model_grid(model)
    tokens = []
    for name, module in resolved:
        out = outputs.get(name)
        if out is None:
            raise NetrevealError(f"layer {name!r} does not run in the model's forward pass")
        if not isinstance(out, torch.Tensor):
            raise NetrevealError(f"layer {name!r} outputs a {type(out).__name__}, not a feature map (B, C, H, W); "
                                 f"{purpose} needs a feature map or a token grid")
        try:
            layout = grid_layout(info, tuple(out.shape), module, name)
        except NetrevealError as exc:
            raise NetrevealError(f"{exc}; {purpose} needs a feature map or a token grid") from None
        if layout.kind == "tokens":
            tokens.append(name)
    if gradient and tokens:
        from netreveal.model.defaults import patch_gradient_reaches

        for name in tokens:
            if not patch_gradient_reaches(model, example, name):
                raise NetrevealError(f"the class score has no gradient on the patch tokens of layer {name!r} (the "
                                     f"last block of a class-token ViT, or a zero head); {purpose} needs a layer "
                                     "they reach, e.g. auto:1")
    return resolved
