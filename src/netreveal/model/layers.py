"""Naming layers: module objects, dotted names, and selectors such as ``last:9``.

Selectors are resolved by tracing one forward pass and recording the order in which modules run,
because ``named_modules`` order is declaration order, which need not be execution order.
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

_SELECTOR = re.compile(r"^(last|first|all)(?::(\d+))?(?::([A-Za-z_][A-Za-z0-9_]*))?$")


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
    """The submodule at dotted ``name``; an unknown name raises an error listing the closest names."""
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
        raise NetrevealError(f"unknown module type {name!r} in layer selector")
    return kind


def resolve_layers(
    model: nn.Module,
    layers: str | nn.Module | Sequence[str | nn.Module],
    example: torch.Tensor | None = None,
) -> list[tuple[str, nn.Module]]:
    """Turn a layer spec into ``[(name, module), ...]``.

    ``layers`` may be a module, a dotted name, a comma-separated list of names, a list of either, or a
    selector: ``last:N`` / ``first:N`` / ``all`` with an optional module type (``last:3:Linear``);
    the type defaults to ``Conv2d``. Selectors need ``example`` (one input batch) to trace the order.
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
            order = trace_order(model, example, _kind_from_name(kind_name))
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


@torch.no_grad()
def check_feature_maps(
    model: nn.Module,
    layers: str | nn.Module | Sequence[str | nn.Module],
    example: torch.Tensor,
    purpose: str = "this method",
) -> list[tuple[str, nn.Module]]:
    """:func:`resolve_layers`, then one forward pass on ``example`` to check that every layer
    outputs a feature map (B, C, H, W). A transformer block's token sequence (B, N, C), a vector or
    a tuple is a NetrevealError naming the layer and what it gives."""
    resolved = resolve_layers(model, layers, example=example)
    outputs: dict[str, object] = {}

    def make_hook(name: str) -> Callable:
        def hook(mod: nn.Module, args: tuple, out: object) -> None:
            outputs.setdefault(name, out)

        return hook

    _observe(model, example, resolved, make_hook)
    for name, _ in resolved:
        out = outputs.get(name)
        if out is None:
            raise NetrevealError(f"layer {name!r} does not run in the model's forward pass")
        if not isinstance(out, torch.Tensor):
            raise NetrevealError(f"layer {name!r} outputs a {type(out).__name__}, not a feature map (B, C, H, W); "
                                 f"{purpose} needs a convolutional feature map")
        if out.dim() != 4:
            what = "a token sequence" if out.dim() == 3 else f"a {out.dim()}-D tensor"
            raise NetrevealError(f"layer {name!r} outputs {what} {tuple(out.shape)}, not a feature map (B, C, H, W); "
                                 f"{purpose} needs a convolutional feature map")
    return resolved
