"""What produced a result: versions, seed, time. Saved with every result."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
from typing import Any

import torch


def versions() -> dict[str, str]:
    """Versions of the packages that shape a result."""
    import numpy
    import torchvision

    from netreveal import __version__

    found = {
        "netreveal": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    try:  # read the installed version without importing the (slow to import) package
        found["scikit-learn"] = importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a hard dependency
        pass
    return found


def provenance(seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: versions, seed, torch threads, UTC time and anything the caller adds (model name...)."""
    record: dict[str, Any] = {
        "versions": versions(),
        "seed": seed,
        "torch_threads": torch.get_num_threads(),  # another count can change the last float bits
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record
