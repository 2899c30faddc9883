"""Report sections, chosen by the type of the result: one module per result type registers how a
result of that type is shown under each image (``@renders(ResultType)``). Methods build no HTML.

    add_sections(report, keys, images, result, title="Grad-CAM")

A renderer is found along the result's class hierarchy (an ``IgosResult`` has its own; any other
``AttributionResult`` is shown as a heatmap). Every module of this package is imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import torch

from netreveal.report.html import Report

Renderer = Callable[[Report, list[str], torch.Tensor, Any, str], None]
_RENDERERS: dict[type, Renderer] = {}
_discovered = False


def renders(result_type: type) -> Callable[[Renderer], Renderer]:
    """Decorator: ``fn(report, keys, images, result, title)`` adds the sections of ``result_type``."""

    def register(fn: Renderer) -> Renderer:
        _RENDERERS[result_type] = fn
        return fn

    return register


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            importlib.import_module(f"{__name__}.{info.name}")


def renderer_for(result: Any) -> Renderer:
    """The renderer registered for the most specific class of ``result``."""
    _discover()
    for cls in type(result).__mro__:
        if cls in _RENDERERS:
            return _RENDERERS[cls]
    raise TypeError(f"no report section renders a {type(result).__name__}")


def add_sections(report: Report, keys: list[str], images: torch.Tensor, result: Any, title: str) -> None:
    """Add the sections of ``result`` (one explanation per image of ``keys`` / ``images``)."""
    renderer_for(result)(report, keys, images, result, title)


__all__ = ["add_sections", "renderer_for", "renders"]
