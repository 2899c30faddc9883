"""Reading weights from disk safely: safetensors, or torch state dicts with ``weights_only=True``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.keymap import BY_ORDER, COUNTER, apply_rules, match_by_order, parse_rules

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file. Never unpickles arbitrary objects."""
    path = Path(path)
    if not path.exists():
        raise NetrevealError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise NetrevealError(f"checkpoint is not a file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise NetrevealError(f"not a readable safetensors checkpoint: {path}") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsupported-type errors all mean "not for us"
        raise NetrevealError(
            f"not a checkpoint (safetensors or a torch state dict loadable with weights_only=True): {path}"
        ) from exc
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise NetrevealError(f"no state dict of tensors in checkpoint: {path}")
    prefix = "module."
    if all(k.startswith(prefix) for k in state):  # saved from DataParallel
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike, arch: str, weights_map: str | Sequence[str] | None = None
) -> dict[str, str]:
    """Read ``path`` and load it into ``model``, renaming its keys by ``weights_map`` first
    (see :mod:`netreveal.model.keymap`). Returns the mapping used, ``{file key: model key}``
    (empty without ``weights_map``)."""
    rules = parse_rules(weights_map)
    if rules == BY_ORDER and Path(path).suffix == ".safetensors":
        raise NetrevealError(
            "--weights-map by-order needs a torch state dict (.pt/.pth): .safetensors files keep their keys sorted"
            " by name, not in saved order; use strip/rename/regex rules"
        )
    state = read_state_dict(path)
    mapping: dict[str, str] = {}
    if rules == BY_ORDER:
        state, mapping = match_by_order(state, model.state_dict(), arch)
    elif rules:
        state, mapping = apply_rules(state, rules)
    load_into(model, state, arch, path, mapping)
    return mapping


def load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    arch: str,
    path: str | os.PathLike,
    mapping: dict[str, str] | None = None,
) -> None:
    """Load ``state`` strictly; a mismatch becomes one line naming what differs.

    Missing ``num_batches_tracked`` counters (checkpoints of other code bases often lack them)
    keep the model's own values. ``mapping`` (file key -> key in ``state``) lets the message name
    the file's key beside the renamed one."""
    own = model.state_dict()
    origin = {new: old for old, new in (mapping or {}).items() if old != new}

    def named(key: str) -> str:
        return f"{key} (file: {origin[key]})" if key in origin else key

    missing = [k for k in own if k not in state and not k.endswith(COUNTER)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatch(es), e.g. {named(k)}: "
                f"file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            )
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {named(unexpected[0])}")
        after = " after --weights-map" if mapping else ""
        raise NetrevealError(f"checkpoint {path} does not match {arch}{after}: " + "; ".join(parts))
    model.load_state_dict({k: state.get(k, v).to(v.dtype) for k, v in own.items()})
