"""Taps: capture the activations and gradients of chosen layers for one call, then remove every hook.

Design:
- Forward hooks record each call's output and hand the rest of the network a *clone*, so an in-place
  op downstream (``ReLU(inplace=True)``) cannot change the recorded value or its gradient.
- What is recorded is the layer's feature grid (B, C, h, w) (:mod:`netreveal.model.grids`): a
  transformer's token sequence without its prefix tokens, laid on the patch grid, or a Swin stage's
  channels-last map, permuted. The network goes on from a copy rebuilt from that grid, so the
  gradient arrives at the grid itself.
- ``name#k`` records call ``k`` of a module that runs several times; other names keep ``call``.
- Parameters are frozen for the call (``requires_grad=False``), so autograd builds a graph only from
  the shallowest tapped layer on, and the backward pass computes only what ``autograd.grad`` with
  respect to the tapped outputs needs: nothing below the deepest requested layer, no weight grads.
- ``model.training`` and every parameter's ``requires_grad`` are restored afterwards, even on error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.grids import Layout, ModelGrid, from_grid, model_grid, tap_layout, to_grid
from netreveal.model.hook_list import HookList, hooks_on
from netreveal.model.layers import resolve_layers
from netreveal.model.sites import split_call
from netreveal.targets import Target, target_scores

__all__ = ["Capture", "HookList", "LayerTaps", "capture", "describe_taps", "frozen", "hooks_on", "model_device"]


@dataclass
class Capture:
    """What one tapped call saw. Tensors are detached; dicts are keyed by layer name, in the order asked.

    ``gradients[name]`` is d(score_i)/d(activation) for each image i (``None`` without backward).
    ``calls[name]`` counts how often the layer ran; ``call`` says which of those calls was kept.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor] | None
    calls: dict[str, int] = field(default_factory=dict)
    call: int = -1
    layouts: dict[str, Layout] = field(default_factory=dict)


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's first parameter or buffer (``fallback`` for a stateless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device(fallback)


@contextlib.contextmanager
def frozen(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Put the model in eval mode with frozen parameters; restore both on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


class LayerTaps:
    """Forward hooks on named modules that record every call's output as a feature grid (a ``with``
    block owns them). ``grid`` says how the model lays out tokens and maps (default: as the model
    declares, see :func:`netreveal.model.grids.model_grid`; without it outputs are kept as they are)."""

    def __init__(self, modules: Sequence[tuple[str, nn.Module]], track_grad: bool, grid: ModelGrid | None = None):
        self.modules = list(modules)
        self.track_grad = track_grad
        self.grid = grid
        self.outputs: dict[str, list[torch.Tensor]] = {name: [] for name, _ in self.modules}
        self.layouts: dict[str, Layout] = {}
        self._hooks = HookList()

    def _hook(self, name: str):
        def hook(module: nn.Module, args, out):
            if not isinstance(out, torch.Tensor):
                raise NetrevealError(
                    f"layer {name!r} returns {type(out).__name__}, not a tensor; tap a submodule"
                )
            if self.grid is None:
                layout = Layout("nchw")
            else:
                layout = self.layouts.setdefault(name, tap_layout(self.grid, tuple(out.shape), module, name))
            grid = to_grid(out, layout)
            if self.track_grad and not grid.requires_grad:
                grid = grid.detach().requires_grad_(True)
            self.outputs[name].append(grid)
            return from_grid(grid, out, layout)

        return hook

    def __enter__(self) -> LayerTaps:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self._hooks.on(self.modules, self._hook)
        return self

    def remove(self) -> None:
        self._hooks.remove()

    def __exit__(self, *exc) -> None:
        self.remove()


def _pick_call(name: str, outputs: list[torch.Tensor], call: int) -> torch.Tensor:
    _, own = split_call(name)
    call = own if own is not None else call
    if not outputs:
        raise NetrevealError(f"layer {name!r} did not run in the forward pass")
    if not -len(outputs) <= call < len(outputs):
        raise NetrevealError(f"layer {name!r} ran {len(outputs)} time(s); call {call} does not exist")
    return outputs[call]


def capture(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: str | nn.Module | Sequence[str | nn.Module],
    target: Target = None,
    *,
    backward: bool = True,
    score: str = "logit",
    call: int = -1,
    eval_mode: bool = True,
) -> Capture:
    """Run ``model(inputs)`` once and return the chosen layers' activations and gradients.

    ``target`` picks the class score per image (None = predicted class; int; one per image; or a
    callable ``logits -> (B,) scores``). ``score`` is ``logit`` (default), ``prob`` or ``log_prob``.
    ``call`` chooses which call of a module that runs several times is kept (default: the last;
    a ``name#k`` layer keeps call ``k``). Activations and gradients are feature grids (B, C, h, w),
    token sequences and channels-last maps included (see :mod:`netreveal.model.grids`).
    ``inputs`` go to the model's device first (callers looping over batches move them once, before).
    """
    inputs = inputs.to(model_device(model, inputs.device))
    resolved = resolve_layers(model, layers, example=inputs)
    with frozen(model, eval_mode=eval_mode), torch.enable_grad() if backward else torch.no_grad():
        with LayerTaps(resolved, track_grad=backward, grid=model_grid(model)) as taps:
            logits = model(inputs)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise NetrevealError("the model must return logits of shape (batch, classes)")
        picked = {name: _pick_call(name, taps.outputs[name], call) for name, _ in resolved}
        for name, tensor in picked.items():
            if tensor.shape[0] != inputs.shape[0]:
                raise NetrevealError(f"layer {name!r} gives {tensor.shape[0]} maps for {inputs.shape[0]} images "
                                     f"(shape {tuple(tensor.shape)}); tap a layer whose first dimension is the batch")
        scores, idx = target_scores(logits, target, score)
        grads: dict[str, torch.Tensor] | None = None
        if backward:
            tensors = list(picked.values())
            got = torch.autograd.grad(scores.sum(), tensors, allow_unused=True)
            grads = {
                name: (g if g is not None else torch.zeros_like(t)).detach()
                for (name, t), g in zip(picked.items(), got)
            }
    return Capture(
        logits=logits.detach(),
        targets=idx,
        scores=scores.detach(),
        activations={name: t.detach() for name, t in picked.items()},
        gradients=grads,
        calls={name: len(taps.outputs[name]) for name, _ in resolved},
        call=call,
        layouts=dict(taps.layouts),
    )


def describe_taps(model: nn.Module, example: torch.Tensor, layouts: dict[str, Layout]) -> dict[str, str]:
    """What each tapped tensor is, in words, for results and reports: e.g. ``{"layer4.1": "block
    output, after the residual add and ReLU"}`` or a ViT block's "transformer block output, patch
    tokens on a 14x14 grid, 1 prefix token(s) dropped"."""
    from netreveal.model.layers import get_module
    from netreveal.model.sites import describe_site

    def module_type(name: str) -> str:
        return type(get_module(model, name)).__name__

    texts = {}
    for name, layout in layouts.items():
        text = describe_site(model, name, example, module_type)
        texts[name] = text if layout.kind in ("nchw", "raw") else f"{text}, {layout.describe()}"
    return texts
