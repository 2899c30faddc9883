"""Engines that spread work over workers: ``local`` (this process) and ``ray`` (a Ray cluster)."""

from __future__ import annotations

from netreveal.engines.base import Engine, ModelSpec, assigned_device
from netreveal.engines.local import LocalEngine
from netreveal.errors import NetrevealError

ENGINES = ("local", "ray")


def get_engine(name: str = "local", *, address: str | None = None, workers: int | None = None) -> Engine:
    """The engine called ``name``; ``address`` and ``workers`` are for engines that use them."""
    if name == "local":
        return LocalEngine()
    if name == "ray":
        from netreveal.engines.ray_engine import RayEngine  # optional extra: netreveal[ray]

        return RayEngine(address=address, workers=workers)
    raise NetrevealError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "LocalEngine", "ModelSpec", "assigned_device", "get_engine"]
