"""A stand-in for a GPU on a CPU-only machine: which tensors *would* live on the model's device,
and where code would copy between host and device or mix the two.

:class:`DeviceAudit` is a torch function mode. The model's parameters and buffers start "on the
device"; tensors the caller marks with :meth:`DeviceAudit.host` (e.g. images loaded from disk) start
on the host. Every torch call propagates the mark: a result is on the device when any input is,
on the host when all inputs are, and a factory (``torch.zeros``, ``rand``, ``arange``...) makes a
device tensor only when given ``device=`` a device read from a device tensor. ``x.device`` of a
device tensor is a marker object, so ``device=model_device(model)`` keeps the mark.

It records, with the netreveal source line that caused it:

- ``syncs``: reading a device tensor on the host (``.item()``, ``.cpu()``, ``.tolist()``,
  ``.numpy()``, ``float()``, ``int()``, ``bool()``, indexing a list with it, formatting it,
  writing it into a host tensor);
- ``transfers``: copying host data to the device (``.to(device)``, ``copy_``, writing a host
  tensor into a device one, ``torch.tensor(data, device=...)``), which torch does synchronously;
- ``mixes``: an operation on a device tensor and a host tensor of one or more dimensions, which
  fails on a real GPU ("Expected all tensors to be on the same device").

Tensors it never saw made (gradients made by autograd in C++) count as device tensors for syncs
but are never reported as mixed.
"""

from __future__ import annotations

import collections
import os
import traceback
from collections.abc import Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

import netreveal

SYNCS = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__", "__array__",
         "__format__"}
MAY_MIX = {"__getitem__", "__setitem__", "to", "copy_", "cpu", "cuda", "__get__", "__set__", "backward",
           "new_tensor", "new_zeros", "new_ones", "new_full", "new_empty"}
INHERIT = {"new_tensor", "new_zeros", "new_ones", "new_full", "new_empty", "zeros_like", "ones_like", "full_like",
           "empty_like", "rand_like", "randn_like", "randint_like"}
SOURCE = os.path.dirname(netreveal.__file__) + os.sep
TORCH = os.path.dirname(torch.__file__) + os.sep
DEVICE, HOST = "device", "host"


class DeviceAudit(TorchFunctionMode):
    """See the module docstring. ``model``: its parameters and buffers are the device tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.marks: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.device = torch.device("cpu")  # stands for the GPU: a distinct object, compared by identity
        self.host_device = torch.device("cpu")  # what .device of a host tensor returns
        self.syncs: collections.Counter = collections.Counter()
        self.transfers: collections.Counter = collections.Counter()
        self.mixes: collections.Counter = collections.Counter()
        for tensor in [*model.parameters(), *model.buffers()]:
            self.marks[tensor] = DEVICE

    def host(self, *tensors: torch.Tensor) -> None:
        """Mark ``tensors`` as living on the host."""
        for tensor in tensors:
            self.marks[tensor] = HOST

    def _target(self, args: Iterable, kwargs: dict) -> str | None:
        """Where ``.to(...)`` sends a tensor (None: it stays where it is)."""
        for value in [*args, kwargs.get("device"), kwargs.get("other")]:
            if isinstance(value, torch.Tensor):
                return self.marks.get(value, DEVICE)
            if isinstance(value, str):
                return HOST if value.startswith("cpu") else DEVICE
            if isinstance(value, torch.device):
                return HOST if value is self.host_device else DEVICE
        return None

    def _factory_mark(self, kwargs: dict) -> str:
        device = kwargs.get("device")
        if device is None or device is self.host_device or (isinstance(device, str) and device.startswith("cpu")):
            return HOST
        return DEVICE

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        prop = getattr(getattr(func, "__self__", None), "__name__", None) if name in ("__get__", "__set__") else None
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        marks = [self.marks.get(t) for t in inputs]
        self_mark = marks[0] if inputs and args and args[0] is inputs[0] else None

        if name == "__get__" and prop == "device" and inputs:
            return self.host_device if self_mark == HOST else self.device
        if name in SYNCS and inputs and args[0] is inputs[0] and self_mark != HOST:
            self.syncs[(name, where())] += 1
        if name not in MAY_MIX and DEVICE in marks and any(m == HOST and t.dim() > 0 for t, m in zip(inputs, marks)):
            self.mixes[(name, where())] += 1
        if name in ("copy_", "__setitem__") and len(inputs) >= 2:
            if marks[0] != HOST and marks[-1] == HOST and inputs[-1].dim() > 0:
                self.transfers[(name, where())] += 1  # a host tensor written into a device tensor
            elif marks[0] == HOST and marks[-1] != HOST:
                self.syncs[(name, where())] += 1  # a device tensor written into a host tensor

        out = func(*args, **kwargs)

        if name == "__set__" and prop == "data" and len(inputs) == 2:  # Module.to() swaps a parameter's data
            if marks[1] is not None:
                self.marks[inputs[0]] = marks[1]
            return out
        if name == "cpu":
            result = HOST
        elif name in ("to", "cuda"):
            target = DEVICE if name == "cuda" else self._target(args[1:], kwargs)
            result = self_mark if target is None else target
            if result == DEVICE and self_mark == HOST:
                self.transfers[(name, where())] += 1
        elif name in INHERIT:
            result = self_mark if "device" not in kwargs else self._factory_mark(kwargs)
        elif name in ("__get__",) and prop == "grad":
            result = self_mark or DEVICE
        elif not inputs:
            result = self._factory_mark(kwargs)
            if name in ("tensor", "as_tensor") and result == DEVICE:
                self.transfers[(name, where())] += 1  # host data copied to the device
        elif DEVICE in marks:
            result = DEVICE
        elif all(m == HOST for m in marks):
            result = HOST
        else:
            result = None
        if result is not None:
            for tensor in _tensors(out):
                self.marks[tensor] = result
        return out

    def report(self) -> str:
        """Every event, one per line (for assertion messages)."""
        lines = []
        for kind, counter in (("sync", self.syncs), ("transfer", self.transfers), ("mix", self.mixes)):
            lines += [f"{kind} {name} at {place}: {n}" for (name, place), n in sorted(counter.items())]
        return "\n".join(lines) or "(none)"


def _tensors(value) -> Iterator[torch.Tensor]:
    """The tensors in a result (tuples include torch's named return types such as ``kthvalue``'s)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def where() -> str:
    """The innermost netreveal source line on the stack (and the library line below it, if any)."""
    stack = [frame for frame in traceback.extract_stack()
             if not frame.filename.startswith(TORCH) and not frame.filename.endswith("device_audit.py")]
    inner = stack[-1] if stack else None
    for frame in reversed(stack):
        if frame.filename.startswith(SOURCE):
            place = f"{os.path.relpath(frame.filename, SOURCE)}:{frame.lineno}"
            if inner is not None and inner is not frame and not inner.filename.startswith(SOURCE):
                place += f" (in {os.path.basename(inner.filename)}:{inner.lineno})"
            return place
    return f"{inner.filename}:{inner.lineno}" if inner else "?"
