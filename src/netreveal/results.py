"""Result types and the one file format they are saved in.

Every kind of explanation is a dataclass holding tensors plus the parameters and provenance that
produced it. Results are saved with ``torch.save`` as plain containers (dicts, lists, tensors,
numbers, strings) so they load back with ``torch.load(weights_only=True)``: no pickled classes,
nothing executable in the file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import torch

from netreveal.errors import NetrevealError

FORMAT_NAME = "netreveal-result"
FORMAT_VERSION = 1
_TYPES: dict[str, type] = {}
T = TypeVar("T")


def register(cls: type[T]) -> type[T]:
    """Class decorator: make a dataclass saveable (by its class name)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a dataclass to be registered")
    _TYPES[cls.__name__] = cls
    return cls


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _TYPES:
            raise TypeError(f"{name} is not a registered result type")
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": name, "fields": fields}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous()
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str):  # subclasses (e.g. torch's TorchVersion) would not load safely
        if isinstance(value, plain):
            return plain(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot save a value of type {type(value).__name__}")


# Modules that define result types; imported on demand so ``load`` works in a fresh process.
_RESULT_MODULES = (
    "netreveal.metrics.perturbation",
    "netreveal.attribution.igos",
    "netreveal.inv.result",
    "netreveal.sag.result",
    "netreveal.concepts.infodisent",
    "netreveal.concepts.prototypes",
    "netreveal.concepts.xnn",
    "netreveal.concepts.tcav",
)


def _lookup(name: str) -> type | None:
    if name not in _TYPES:
        import importlib

        for module in _RESULT_MODULES:
            importlib.import_module(module)
            if name in _TYPES:
                break
    return _TYPES.get(name)


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__type__" in value and "fields" in value:
        cls = _lookup(value["__type__"])
        if cls is None:
            raise NetrevealError(f"unknown result type {value['__type__']!r} in file")
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(result: Any, path: str | os.PathLike) -> Path:
    """Save a registered result dataclass to ``path`` (written atomically)."""
    path = Path(path)
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "result": _encode(result)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike) -> Any:
    """Load a result saved by :func:`save` (safe: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise NetrevealError(f"result file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign files
        raise NetrevealError(f"not a netreveal result file: {path} ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise NetrevealError(f"not a netreveal result file: {path}")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise NetrevealError(
            f"{path} was written by a newer netreveal (format {payload['version']}); upgrade to read it"
        )
    return _decode(payload["result"])


@register
@dataclasses.dataclass
class AttributionResult:
    """Heatmaps for a batch of images, one target class per image.

    ``maps`` is (B, H, W) at the input size; ``raw`` keeps the method's own resolution when it has
    one (e.g. the conv layer grid for Grad-CAM). ``extras`` holds method-specific tensors and lists
    (loss curves, graph structures...).
    """

    method: str
    maps: torch.Tensor
    targets: torch.Tensor
    target_probs: torch.Tensor
    params: dict
    provenance: dict
    raw: torch.Tensor | None = None
    extras: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.maps.shape[0])
