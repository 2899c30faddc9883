"""Ground truth for the localisation metrics: per image, where the evidence for its class lies and
where each annotated part is.

A loader implements :class:`GroundTruth` (``load(path, class_name, size)``): it reads whatever an
image folder keeps beside an image and returns a :class:`Truth` at the model's input size, or None.
Loaders are chosen by name (:func:`ground_truth_loader`); the parts world's is ``partsworld``. A
loader whose classes are defined by their parts may also say so through an optional
``class_definitions`` attribute (class name -> part names; see :func:`class_definitions`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from netreveal.errors import NetrevealError

if TYPE_CHECKING:
    import torch


@dataclass
class Truth:
    """What is known of one image, at the model's input size: ``parts`` (P, S, S) bool, one mask per
    annotated part (``part_names``), and ``evidence`` (S, S) bool where the class is shown (None when
    the image's class has no annotated evidence)."""

    parts: torch.Tensor
    part_names: list[str]
    evidence: torch.Tensor | None


@runtime_checkable
class GroundTruth(Protocol):
    """Reads the ground truth of an image file (None when it has none)."""

    name: str

    def load(self, path: str | os.PathLike, class_name: str | None, size: int) -> Truth | None: ...


class NoGroundTruth:
    """No image has ground truth."""

    name = "none"

    def load(self, path: str | os.PathLike, class_name: str | None, size: int) -> Truth | None:
        return None


def class_definitions(loader: GroundTruth) -> dict[str, list[str]] | None:
    """What makes each class according to ``loader`` (its optional ``class_definitions``
    attribute: class name -> part names), or None when it does not say."""
    found = getattr(loader, "class_definitions", None)
    if not found:
        return None
    return {str(name): [str(p) for p in parts] for name, parts in dict(found).items()}


# name -> "module:class"; imported when chosen
LOADERS = {
    "partsworld": "netreveal.data.partsworld_truth:PartsWorldTruth",
    "none": "netreveal.data.groundtruth:NoGroundTruth",
}
DEFAULT_LOADER = "partsworld"


def ground_truth_loader(loader: str | GroundTruth = DEFAULT_LOADER) -> GroundTruth:
    """The loader called ``loader`` (one of :data:`LOADERS`), or ``loader`` itself."""
    if not isinstance(loader, str):
        if not isinstance(loader, GroundTruth):
            raise TypeError(f"{type(loader).__name__} is not a ground-truth loader")
        return loader
    if loader not in LOADERS:
        raise NetrevealError(f"unknown ground truth {loader!r}; choose from {', '.join(LOADERS)}")
    module, cls = LOADERS[loader].split(":")
    return getattr(importlib.import_module(module), cls)()

