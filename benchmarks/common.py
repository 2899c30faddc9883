"""Set-up and timing shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from netreveal.errors import NetrevealError


def demo_setup(
    n: int,
    name: str = "demo CNN, parts world 64px",
    stand_in: str = "stand-in DemoCNN (random init), random 64px",
) -> tuple[str, nn.Module, torch.Tensor]:
    """The shipped demo model and ``n`` parts-world test images; a random-init DemoCNN on random
    images when the weights are not installed. Returns (name, model, images)."""
    try:
        from netreveal.data.partsworld import PartsWorld
        from netreveal.model.demo import load_demo_model

        model, _ = load_demo_model()
        images, _, _ = PartsWorld(size=64, split="test").batch(range(n))
        return name, model, images
    except (ImportError, NetrevealError, FileNotFoundError) as exc:
        from netreveal.model.demo import DemoCNN

        print(f"(demo model unavailable: {exc}; using a random-init DemoCNN and random images)")
        torch.manual_seed(0)
        return stand_in, DemoCNN().eval(), torch.rand(n, 3, 64, 64)


def timed(fn: Callable[..., object], *args, **kwargs) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process (= wall time on an idle machine at one thread; on
    a shared machine the wall time also counts waiting for a core) and ``fn(*args, **kwargs)``."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu, out
