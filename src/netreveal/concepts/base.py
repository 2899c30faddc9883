"""What every concept model on a frozen backbone shares, whatever its own parameters.

A :class:`ConceptModel` (an InfoDisent head, an XNN) records the backbone layer it reads, the input
size it was trained at, its class names, its training history, the settings of its training run
(``info``) and the provenance of that run (package versions, seed, time). It is saved as a
registered result type of :mod:`netreveal.results` (one file format, read with
``weights_only=True``): a :class:`ConceptRecord` subclass holding these common fields plus the
model's own. :func:`save_model` / :func:`load_model` are the one save / load path.

Files written before the provenance was recorded have no ``provenance`` field and load with an
empty one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from netreveal import results as result_io
from netreveal.concepts.layer_reading import LayerSpec
from netreveal.concepts.training import plain
from netreveal.errors import NetrevealError
from netreveal.provenance import provenance
from netreveal.targets import Target, resolve_targets, slice_targets


@dataclasses.dataclass(kw_only=True)
class ConceptRecord:
    """The saved fields every concept model has (subclasses add the model's own)."""

    class_names: list
    layer: dict | None
    image_size: list | None
    history: list
    info: dict = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict)


M = TypeVar("M", bound="ConceptModel")


class ConceptModel(nn.Module):
    """Base of the concept models: the metadata above and its part of saving and loading.

    Subclasses set ``kind`` (the method name), ``title`` (how messages name the model) and
    ``record_type``, and implement :meth:`record` / :meth:`from_record` with
    :meth:`common_fields` / :meth:`restore_common` for the shared part.
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    record_type: ClassVar[type[ConceptRecord]]

    def __init__(self, num_classes: int, class_names: list[str] | None = None):
        super().__init__()
        self.class_names = (
            list(class_names)
            if class_names is not None
            else [f"class_{i}" for i in range(num_classes)]
        )
        self.layer: LayerSpec | None = None
        self.image_size: list[int] | None = None
        self.history: list[dict] = []
        self.info: dict = {}
        self.provenance: dict = {}

    def common_fields(self) -> dict:
        """The :class:`ConceptRecord` fields of this model."""
        return {
            "class_names": list(self.class_names),
            "layer": self.layer.as_dict() if self.layer is not None else None,
            "image_size": self.image_size,
            "history": list(self.history),
            "info": dict(self.info),
            "provenance": dict(self.provenance),
        }

    def restore_common(self, rec: ConceptRecord) -> None:
        """Set the common metadata from a record (the inverse of :meth:`common_fields`)."""
        self.class_names = list(rec.class_names)
        self.layer = LayerSpec.from_dict(rec.layer) if rec.layer is not None else None
        self.image_size = rec.image_size
        self.history = list(rec.history)
        self.info = dict(rec.info)
        self.provenance = dict(rec.provenance)

    def record(self) -> ConceptRecord:
        raise NotImplementedError

    @classmethod
    def from_record(cls, rec: ConceptRecord) -> ConceptModel:
        raise NotImplementedError

    def finish_run(self, info: dict, seed: int) -> None:
        """Keep the settings of the training run that just ended and its provenance."""
        self.info = info
        self.provenance = plain(provenance(seed=seed, method=self.kind))

    def read_layer(self) -> LayerSpec:
        """The backbone layer the model reads (an error when it was never recorded)."""
        if self.layer is None:
            raise NetrevealError(f"this {self.title} does not record the layer it reads")
        return self.layer


def save_model(model: ConceptModel, path: str | os.PathLike) -> Path:
    """Save a concept model (with its metadata) as a netreveal result file."""
    return result_io.save(model.record(), path)


def load_model(path: str | os.PathLike, model_type: type[M]) -> M:
    """Load a concept model of ``model_type`` saved by :func:`save_model` (``weights_only=True``),
    in eval mode."""
    rec = result_io.load(path)
    if not isinstance(rec, model_type.record_type):
        raise NetrevealError(
            f"{path} is not a saved {model_type.title} (it holds a {type(rec).__name__})"
        )
    return model_type.from_record(rec).eval()


def explained_classes(
    target: Target, start: int, stop: int, logits: torch.Tensor, title: str
) -> torch.Tensor:
    """Class indices (b,) for images ``start:stop`` of a batch (see
    :func:`netreveal.targets.resolve_targets`); a concept model explains classes, not callables."""
    if callable(target) and not isinstance(target, torch.Tensor):
        raise NetrevealError(f"{title} explains class indices; a callable target is not supported")
    return resolve_targets(slice_targets(target, start, stop), logits)
