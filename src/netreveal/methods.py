"""The explanation methods the CLI and reports know, behind one small interface.

A method takes the model adapter, a batch of images (B, 3, H, W) in [0, 1], their targets (B,)
and options, and returns its result type. Methods that produce one heatmap per image also say how
to get it, so deletion/insertion and the pointing game can score them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from netreveal.errors import NetrevealError
from netreveal.model.adapter import ModelAdapter
from netreveal.report import Report


@dataclass
class Options:
    """Settings shared by methods; each method reads what it needs."""

    layer: str = "last:1"
    layers: str = "last:9"
    batch_size: int = 16
    seed: int = 0
    progress: bool = True


@dataclass
class Method:
    name: str
    title: str
    run: Callable[[ModelAdapter, torch.Tensor, torch.Tensor, Options], Any]
    heatmaps: Callable[[Any], torch.Tensor] | None
    report: Callable[[Report, list[str], torch.Tensor, Any, Options], None]


def _run_gradcam(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.gradcam import gradcam

    return gradcam(adapter.model, images, opts.layer, targets, batch_size=opts.batch_size, progress=opts.progress)


def _report_heatmaps(title: str):
    def add(report: Report, keys: list[str], images: torch.Tensor, result, opts: Options) -> None:
        for i, key in enumerate(keys):
            caption = f"layer {result.params['layer']}" if "layer" in result.params else ""
            report.add_heatmap(key, title, images[i], result.maps[i], caption=caption)

    return add


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


register_method(Method("gradcam", "Grad-CAM", _run_gradcam, lambda r: r.maps, _report_heatmaps("Grad-CAM")))


def get_methods(names: str | list[str]) -> list[Method]:
    """Methods by name (comma-separated string or list); unknown names are an error."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise NetrevealError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if not names:
        raise NetrevealError("no method given")
    return [METHODS[n] for n in names]
