"""Plain records the store's query functions return (no database session attached).

They are the shapes other layers (label analysis, the naming studio, the simulated crowd) read a
study through, so none of them needs to query store tables itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelRecord:
    """One free-text label a player gave for one study item (a cluster map of one image and layer).

    ``step`` is the reveal step (1..6) at which the guess was made; ``correct`` whether the guessed
    class was the explained class. ``weight`` is the cluster's INV weight in percent.
    """

    item_id: str
    image: str
    image_class: str
    layer: str
    cluster: int
    weight: float
    text: str
    step: int
    correct: bool
    player: str = ""
    language: str = "en"


@dataclass
class ImageRef:
    """A study image: its key, classes, the model's probability and the id of its picture."""

    id: int
    key: str
    true_class: str | None
    predicted_class: str
    probability: float
    media_id: int


@dataclass
class ItemRef:
    """A study item (one significant cluster map of one image and layer) with what its image says."""

    id: int
    image_id: int
    image_key: str
    image_media_id: int
    map_media_id: int
    layer: str
    depth: int
    cluster: int
    weight: float
    predicted_class: str
    true_class: str | None
    probability: float
    label_count: int = 0


@dataclass
class StudyRecord:
    """A study's description: id, name, kind, model (its JSON description), classes, layers, params."""

    id: int
    name: str
    kind: str
    model: str
    classes: list[str]
    layers: list[str]
    params: dict


__all__ = ["ImageRef", "ItemRef", "LabelRecord", "StudyRecord"]
