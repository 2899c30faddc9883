"""Which concept model explains: the InfoDisent head (``--head``, from ``netreveal train-head
infodisent``) or XNN (``--xnn``, from ``netreveal train-head xnn``) file when given, else the
shipped demo model for the demo adapter; for any other model a file is required. Files are loaded
once per path and modification time."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from netreveal.concepts.infodisent import InfoDisentHead, load_head
from netreveal.concepts.xnn import XNN, load_xnn
from netreveal.errors import NetrevealError

FLAGS = {"infodisent": "--head", "xnn": "--xnn"}


@lru_cache(maxsize=8)
def _load(kind: str, path: str, mtime_ns: int) -> InfoDisentHead | XNN:
    return load_head(path) if kind == "infodisent" else load_xnn(path)


def _from_file(kind: str, path: str | os.PathLike, flag: str) -> InfoDisentHead | XNN:
    p = Path(path).expanduser()
    if not p.is_file():
        raise NetrevealError(f"{flag} file not found: {p}")
    return _load(kind, str(p.resolve()), p.stat().st_mtime_ns)


def concept_model(kind: str, adapter_name: str, path: str | os.PathLike | None) -> tuple[InfoDisentHead | XNN, str]:
    """The InfoDisent head (``kind="infodisent"``) or XNN (``"xnn"``) to use and where it came
    from (``"demo"`` or the file path): ``path`` when given, else the demo asset for the demo
    model; otherwise an error naming the missing flag."""
    flag = FLAGS[kind]
    if path:
        return _from_file(kind, path, flag), str(path)
    if adapter_name == "demo":
        from netreveal.concepts.demo_assets import load_demo_infodisent, load_demo_xnn

        return (load_demo_infodisent() if kind == "infodisent" else load_demo_xnn()), "demo"
    raise NetrevealError(f"{flag} is required for {kind} with a non-demo model")


def check_reads_layers(model: torch.nn.Module, specs, kind: str, origin: str) -> None:
    """Fail early, naming the file, when a concept model reads layers ``model`` does not have."""
    from netreveal.model.layers import named_root

    names = dict(named_root(model).named_modules())
    for spec in specs:
        if spec is not None and (spec.name == "" or spec.name not in names):
            what = f"the demo {kind}" if origin == "demo" else f"{kind} file {origin}"
            raise NetrevealError(
                f"{what} reads layer {spec.name!r}, which this model does not have "
                "(trained on another model?)"
            )


def origin_model(kind: str, origin: str) -> InfoDisentHead | XNN:
    """The concept model a result was made with (``origin``: "demo" or its file)."""
    return concept_model(kind, "demo", None if origin == "demo" else origin)[0]
