"""One owner for module hooks: a list of removable handles used as a ``with`` block.

Every forward, forward-pre and backward hook the package puts on a model goes through a
:class:`HookList`, which removes all of its handles when the block ends, also on error.
Kept free of other netreveal imports so that :mod:`netreveal.model.layers` can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from torch import nn
from torch.utils.hooks import RemovableHandle

HookKind = Literal["forward", "forward_pre", "backward"]
Hook = Callable[..., Any]


class HookList:
    """Removable hook handles owned by a ``with`` block; leaving the block removes every one."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def add(self, module: nn.Module, hook: Hook, kind: HookKind = "forward") -> RemovableHandle:
        """Register ``hook`` on ``module`` as a forward, forward-pre or (full) backward hook."""
        if kind == "forward":
            handle = module.register_forward_hook(hook)
        elif kind == "forward_pre":
            handle = module.register_forward_pre_hook(hook)
        elif kind == "backward":
            handle = module.register_full_backward_hook(hook)
        else:
            raise ValueError(f"unknown hook kind {kind!r}")
        self._handles.append(handle)
        return handle

    def on(
        self,
        named: Iterable[tuple[str, nn.Module]],
        hook_factory: Callable[[str], Hook],
        kind: HookKind = "forward",
    ) -> HookList:
        """Register ``hook_factory(name)`` on each ``(name, module)``; if one fails, remove them all."""
        try:
            for name, module in named:
                self.add(module, hook_factory(name), kind)
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove every handle (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> HookList:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def hooks_on(
    named: Iterable[tuple[str, nn.Module]],
    hook_factory: Callable[[str], Hook],
    kind: HookKind = "forward",
) -> HookList:
    """A :class:`HookList` with ``hook_factory(name)`` on each named module: ``with hooks_on(...):``."""
    return HookList().on(named, hook_factory, kind)
