"""Reading weights from disk safely: safetensors, or torch state dicts with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from netreveal.errors import NetrevealError

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


def load_into(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path: str | os.PathLike) -> None:
    """Load ``state`` strictly; a mismatch becomes one line naming what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise NetrevealError(f"checkpoint {path} does not match {arch}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
