"""What an engine runs: a recipe for the model a worker rebuilds, and the engine protocol.

An engine maps a function over work items (image shards). Each worker builds its own state once
(``setup``: load the model from a :class:`ModelSpec`) and then handles items with ``work``. Results
come back to the calling process through ``on_result`` as they finish, in any order, so the
caller can record each one (a manifest, a progress bar) before the next arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from netreveal.model.adapter import ModelAdapter

State = TypeVar("State")
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

_assigned_device: str | None = None


def assigned_device() -> str | None:
    """The device the engine gave this worker process (``"cuda"`` on a Ray worker that holds a GPU),
    or None when it gave none (the local engine, CPU workers)."""
    return _assigned_device


def assign_device(device: str | None) -> None:
    """Set what :func:`assigned_device` returns in this process (engines call it in each worker)."""
    global _assigned_device
    _assigned_device = device


@dataclass(frozen=True)
class ModelSpec:
    """The flags that name a model, as plain values a worker process can rebuild it from."""

    model: str = "demo"
    weights: str | None = None
    weights_map: tuple[str, ...] = ()
    class_names: str | None = None
    input_size: int | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self, device: str | None = None) -> ModelAdapter:
        """Build the model on ``device`` when given, else on the device the engine assigned this
        worker (its GPU), else on the spec's device."""
        from netreveal.model.adapter import load_model

        return load_model(self.model, self.weights, class_names=self.class_names, input_size=self.input_size,
                          device=device or assigned_device() or self.device,
                          weights_map=list(self.weights_map) or None)

    @classmethod
    def from_args(cls, args: Any) -> ModelSpec:
        """The spec the ``add_model_args`` flags name."""
        return cls(model=args.model, weights=args.weights, weights_map=tuple(args.weights_map or ()),
                   class_names=args.class_names, input_size=args.input_size, device=args.device)


class Engine(Protocol):
    """Runs ``work(state, item)`` for every item, each worker with its own ``state = setup()``."""

    name: str
    workers: int

    def map(self, setup: Callable[[], State], work: Callable[[State, Item], Outcome], items: Sequence[Item],
            on_result: Callable[[int, Outcome], None]) -> None:
        """Call ``on_result(index, outcome)`` in this process for each item as it finishes (any
        order); ``setup`` and ``work`` must be picklable (module-level functions or partials of
        them) for engines that run them in other processes; ``setup`` learns the device it may use
        from :func:`assigned_device`. An error in any item is raised here."""
        ...


__all__ = ["Engine", "ModelSpec", "assign_device", "assigned_device"]
