"""The one shape labels take between the store, the simulated crowd and the label pipeline."""

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
