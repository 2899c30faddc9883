"""A run over an image set as plain data: the model recipe, the method runs with their options, the
image source and the shard layout. Everything here pickles, so a shard can be worked on in another
process from its :class:`ShardSpec` alone (the images are read there, by path or index)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from netreveal.data.sources import ImageSource
from netreveal.engines.base import ModelSpec
from netreveal.errors import NetrevealError
from netreveal.methods.base import MethodRun
from netreveal.runs import DEFAULT_SHARD_SIZE


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard ``index`` of a run seeded ``seed``: the run's own seed for the first
    shard (so a run of one shard draws as an unsharded one), a hash of both for the others."""
    if index == 0:
        return int(seed)
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class MethodSpec:
    """A method run as plain values: method name, label and every option."""

    name: str
    label: str
    options: dict[str, Any]

    @classmethod
    def of(cls, run: MethodRun) -> MethodSpec:
        return cls(run.method.name, run.label, {**dataclasses.asdict(run.options), "progress": False})

    def run(self, *, seed: int | None = None, progress: bool = False) -> MethodRun:
        """The method run, with the shard's ``seed`` (when given) and without progress bars."""
        from netreveal.methods import get_methods

        method = get_methods([self.name])[0]
        values = {**self.options, "progress": progress, **({} if seed is None else {"seed": seed})}
        return MethodRun(method, method.Options(**values), self.label)


@dataclass(frozen=True)
class ShardSpec:
    """One shard of a run: images ``start .. stop - 1`` of the run's source (``source`` is that
    slice), and the seed its methods draw with."""

    index: int
    start: int
    stop: int
    source: ImageSource
    seed: int

    @property
    def name(self) -> str:
        return f"{self.index:05d}"


@dataclass(frozen=True)
class RunPlan:
    """What an ``explain`` or ``evaluate`` run does; :meth:`parameters` is what decides its numbers."""

    command: str  # "explain" or "evaluate"
    model: ModelSpec
    methods: tuple[MethodSpec, ...]
    source: ImageSource
    shard_size: int = DEFAULT_SHARD_SIZE
    seed: int = 0
    batch_size: int = 16
    steps: int = 50
    baseline: str = "blur"
    target: int | None = None
    convention: str = "netreveal"  # how deletion/insertion is scored
    loader_workers: int = 0  # how images are read, not what comes out

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise NetrevealError(f"--shard-size must be at least 1, got {self.shard_size}")
        if self.loader_workers < 0:
            raise NetrevealError(f"--loader-workers must be at least 0, got {self.loader_workers}")

    def parameters(self) -> dict[str, Any]:
        """The run's parameters as JSON values: a resumed run must have the same."""
        from netreveal.provenance import versions

        plain = {"command": self.command, "model": dataclasses.asdict(self.model),
                 "methods": [dataclasses.asdict(m) for m in self.methods], "images": self.source.describe(),
                 "shard_size": self.shard_size, "seed": self.seed, "batch_size": self.batch_size,
                 "steps": self.steps, "baseline": self.baseline, "target": self.target,
                 "metric_convention": self.convention, "versions": versions()}
        return json.loads(json.dumps(plain, default=str))

    def shards(self) -> list[ShardSpec]:
        n = len(self.source)
        return [ShardSpec(i, start, min(start + self.shard_size, n), self.source.slice(start, start + self.shard_size),
                          shard_seed(self.seed, i))
                for i, start in enumerate(range(0, n, self.shard_size))]


__all__ = ["DEFAULT_SHARD_SIZE", "MethodSpec", "RunPlan", "ShardSpec", "shard_seed"]
