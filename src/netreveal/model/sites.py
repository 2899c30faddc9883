"""Tap points that mean something in a network, found by tracing one forward pass.

- **Transformer blocks**: the modules that hold an attention module as a direct child
  (``nn.MultiheadAttention`` or a module class named ``*Attention``: timm's ``Attention`` and
  ``WindowAttention``, torchvision's ``ShiftedWindowAttention``). A model with such blocks is a
  *transformer*.
- **Residual blocks**: the modules whose output is a residual sum ``x + F(x)`` of the module's own
  input ``x`` (both terms of the last addition depend on ``x``; the shortcut may be a projection),
  optionally followed by one element-wise activation (ReLU, GELU, SiLU...). A container that only
  passes such a sum on (ResNet's ``layer4``) is not counted again: the innermost module returning
  the tensor names it (``layer4.1``).
- **Post-activation points** (``relu``): every tensor that a ReLU module returns, one per call (a
  module used twice, as torchvision's ``BasicBlock.relu``, gives two points), and a residual
  block's output when its last operation is a ReLU (also a functional one). A point that is a
  residual block's output is named by the block (``layer4.1``); a later call of a module used
  several times carries its call index (``layer4.1.relu#0`` is the first call).

``name#k`` always means call ``k`` (from 0) of module ``name``; a plain name means its last call.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from netreveal.model.hook_list import HookList

ACTIVATION_NODES = {"ReluBackward0", "GeluBackward0", "SiluBackward0", "HardswishBackward0",
                    "LeakyReluBackward0", "HardtanhBackward0", "SigmoidBackward0", "EluBackward0"}
_MAX_WALK = 200_000  # graph nodes one dependency check may visit


def is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def split_call(name: str) -> tuple[str, int | None]:
    """``"layer4.1.relu#0"`` -> ``("layer4.1.relu", 0)``; a plain name -> ``(name, None)``."""
    base, sep, call = name.rpartition("#")
    if sep and call.lstrip("-").isdigit():
        return base, int(call)
    return name, None


@dataclass
class Site:
    """One tap point: ``name`` (with ``#k`` for a call of a module used several times) and what it is."""

    name: str
    what: str


@dataclass
class Sites:
    """The traced tap points of a model for one input shape, each list in forward order."""

    transformer_blocks: list[str] = field(default_factory=list)
    residual_blocks: list[Site] = field(default_factory=list)
    relu: list[Site] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def transformer(self) -> bool:
        return bool(self.transformer_blocks)


@dataclass
class _Call:
    name: str
    module: nn.Module
    index: int
    input_node: object
    input_tensor: torch.Tensor | None
    output: torch.Tensor | None = None


def _node_of(tensor: torch.Tensor | None):
    if tensor is None or not isinstance(tensor, torch.Tensor):
        return None
    return tensor.grad_fn if tensor.grad_fn is not None else ("leaf", tensor)


def _reaches(start, target) -> bool:
    """Whether the autograd graph from ``start`` leads back to ``target`` (a node, or a leaf tensor)."""
    leaf = target[1] if isinstance(target, tuple) else None
    stack, seen = [start], set()
    while stack and len(seen) < _MAX_WALK:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node is target or (leaf is not None and getattr(node, "variable", None) is leaf):
            return True
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return False


def residual_activation(call: _Call) -> tuple[bool, str | None]:
    """(whether the call's output is a residual sum of its input, the activation after the sum)."""
    out, target = call.output, call.input_node
    if out is None or out.grad_fn is None or target is None:
        return False, None
    node, activation = out.grad_fn, None
    if type(node).__name__ in ACTIVATION_NODES:
        activation = type(node).__name__.replace("Backward0", "")
        node = node.next_functions[0][0]
    if type(node).__name__ != "AddBackward0":
        return False, None
    terms = [fn for fn, _ in node.next_functions if fn is not None]
    if len(terms) != 2 or not all(_reaches(term, target) for term in terms):
        return False, None
    return True, activation


def _record(model: nn.Module, example: torch.Tensor) -> list[_Call]:
    """Every module call of one forward pass in the order the calls end, with input and output."""
    root = getattr(model, "netreveal_inner", model)
    names: dict[nn.Module, str] = {}
    for name, module in root.named_modules(remove_duplicate=False):
        names.setdefault(module, name)
    calls: list[_Call] = []
    open_calls: dict[nn.Module, list[_Call]] = {}
    counts: dict[str, int] = {}

    def pre(module, args):
        name = names[module]
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        open_calls.setdefault(module, []).append(_Call(name, module, counts.get(name, 0), _node_of(x), x))
        counts[name] = counts.get(name, 0) + 1

    def post(module, args, out):
        call = open_calls[module].pop()
        call.output = out if isinstance(out, torch.Tensor) else None
        calls.append(call)

    from netreveal.model.hooks import frozen, model_device

    with HookList() as hooks:
        for module, name in names.items():
            if name:
                hooks.add(module, pre, "forward_pre")
                hooks.add(module, post)
        with frozen(model), torch.enable_grad():
            model(example[:1].detach().to(model_device(model, example.device)).clone().requires_grad_(True))
    return calls


_ACTIVATION_NAMES = {"Relu": "ReLU", "Gelu": "GELU", "Silu": "SiLU", "LeakyRelu": "LeakyReLU", "Elu": "ELU",
                     "Hardtanh": "Hardtanh (ReLU6)"}


def _activation_text(activation: str | None) -> str:
    return f" and {_ACTIVATION_NAMES.get(activation, activation)}" if activation else ""


def trace_sites(model: nn.Module, example: torch.Tensor) -> Sites:
    """The tap points of ``model`` (see the module docstring), from one forward pass on ``example[:1]``."""
    calls = _record(model, example)
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.name] = max(counts.get(call.name, 0), call.index + 1)
    sites = Sites(calls=counts)

    def call_name(call: _Call) -> str:
        return call.name if counts[call.name] == 1 else f"{call.name}#{call.index}"

    parents = {}
    root = getattr(model, "netreveal_inner", model)
    for name, module in root.named_modules():
        for child in module.children():
            if is_attention(child) and not is_attention(module) and name:
                parents[module] = name
    seen_blocks: set[str] = set()
    for call in calls:
        if call.module in parents and call.name not in seen_blocks:
            seen_blocks.add(call.name)
            sites.transformer_blocks.append(call.name)
            sites.descriptions[call.name] = "transformer block output"

    block_keys: dict[tuple[int, int], str] = {}
    for call in calls:
        if call.output is None:
            continue
        key = (id(call.output), call.output._version)
        if key in block_keys:
            continue  # a container passing on a block's output
        residual, activation = residual_activation(call)
        if residual:
            name = call_name(call)
            what = f"block output, after the residual add{_activation_text(activation)}"
            block_keys[key] = name
            sites.residual_blocks.append(Site(name, what))
            sites.descriptions.setdefault(name, what)

    relu_keys: set[tuple[int, int]] = set()
    for call in calls:
        out = call.output
        if out is None or out.grad_fn is None or type(out.grad_fn).__name__ != "ReluBackward0":
            continue
        key = (id(out), out._version)
        if key in relu_keys:
            continue
        if key in block_keys:
            relu_keys.add(key)
            name = block_keys[key]
            sites.relu.append(Site(name, sites.descriptions[name]))
        elif isinstance(call.module, nn.ReLU):
            relu_keys.add(key)
            name = call_name(call)
            what = "ReLU output (post-activation)"
            if counts[call.name] > 1:
                what += f", call {call.index} of {counts[call.name]}"
            sites.relu.append(Site(name, what))
            sites.descriptions.setdefault(name, what)
    return sites


_SITES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_sites(model: nn.Module, example: torch.Tensor) -> Sites:
    """:func:`trace_sites`, cached per model, input shape, dtype, device and module count."""
    key = (tuple(example.shape[1:]), example.dtype, str(example.device), sum(1 for _ in model.modules()))
    cached = _SITES.setdefault(model, {})
    if key not in cached:
        cached.clear()
        cached[key] = trace_sites(model, example)
    return cached[key]


def describe_site(model: nn.Module, name: str, example: torch.Tensor,
                  module_type: Callable[[str], str] | None = None) -> str:
    """What the tensor tapped at ``name`` is, in words ("block output, after the residual add and ReLU")."""
    sites = model_sites(model, example)
    if name in sites.descriptions:
        return sites.descriptions[name]
    base, call = split_call(name)
    kind = module_type(base) if module_type else "module"
    if call is not None:
        return f"{kind} output, call {call} of {sites.calls.get(base, '?')}"
    inside = [s.name for s in sites.residual_blocks if base.startswith(s.name + ".")]
    if inside:
        return f"{kind} output inside residual block {inside[-1]} (before the residual add)"
    return f"{kind} output"
