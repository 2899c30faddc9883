"""The parts world as a source of ground truth: part masks written beside each image by
``PartsWorld.write_folder`` (class evidence: the union of the parts that define the class), and
generated held-out images with their masks."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from netreveal.data.groundtruth import Truth
from netreveal.data.images import label_index
from netreveal.data.inputs import Inputs
from netreveal.data.partsworld import CLASSES, PartsWorld, load_ground_truth
from netreveal.data.sources import ImageItem, Reading
from netreveal.errors import NetrevealError

if TYPE_CHECKING:
    from netreveal.model.adapter import ModelAdapter


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Bool masks (P, h, w) resized to (P, size, size) by nearest neighbour."""
    if masks.shape[0] == 0:
        return masks.bool()
    resized = torch.nn.functional.interpolate(masks.float()[:, None], size=(size, size), mode="nearest")
    return resized[:, 0] > 0.5


class PartsWorldTruth:
    """Reads the ``.npz`` part masks a parts-world folder keeps beside each image."""

    name = "partsworld"
    class_definitions = {name: list(parts) for name, parts in CLASSES.items()}

    def load(self, path: str | os.PathLike, class_name: str | None, size: int) -> Truth | None:
        """The masks beside ``path`` at ``size`` px (None when there are none); the evidence is the
        union of the parts that define ``class_name``."""
        found = load_ground_truth(path)
        if found is None:
            return None
        masks, parts = found
        defining = set(CLASSES.get(class_name or "", ()))
        chosen = [m for m, p in zip(masks, parts) if p in defining]
        evidence = resize_masks(torch.stack(chosen).any(dim=0)[None], size)[0] if chosen else None
        return Truth(parts=resize_masks(masks, size), part_names=list(parts), evidence=evidence)


@dataclass(frozen=True)
class PartsWorldSource:
    """Held-out parts-world images ``start .. stop - 1`` of ``split`` (classes in turn), generated
    by index when read, with their defining-part masks as ground truth."""

    size: int
    stop: int
    start: int = 0
    seed: int = 0
    split: str = "test"

    def __len__(self) -> int:
        return self.stop - self.start

    def item(self, index: int, reading: Reading) -> ImageItem:
        if not 0 <= index < len(self):
            raise IndexError(index)
        sample = PartsWorld(size=self.size, seed=self.seed, split=self.split).sample(self.start + index)
        return ImageItem(f"{sample.class_name}-{sample.index:03d}", sample.image,
                         label_index(sample.class_name, list(reading.class_names)), sample.class_name,
                         sample.masks[torch.tensor(sample.defining)].any(dim=0), sample.masks)

    def slice(self, start: int, stop: int) -> PartsWorldSource:
        stop = min(self.start + stop, self.stop)
        return replace(self, start=min(self.start + start, stop), stop=stop)

    def describe(self) -> dict[str, Any]:
        return {"kind": "partsworld", "images": len(self), "start": self.start, "stop": self.stop,
                "seed": self.seed, "split": self.split, "size": self.size}


def partsworld_source(adapter: ModelAdapter, n: int, seed: int = 0, split: str = "test") -> PartsWorldSource:
    """The first ``n`` held-out parts-world images at the model's input size."""
    if n < 1:
        raise NetrevealError("need at least one image")
    PartsWorld(size=adapter.input_size, seed=seed, split=split)  # bad settings fail here
    return PartsWorldSource(size=adapter.input_size, stop=n, seed=seed, split=split)


def partsworld_inputs(adapter: ModelAdapter, n: int, seed: int = 0, split: str = "test") -> Inputs:
    """``n`` held-out parts-world images (classes in turn) with their defining-part masks as ground truth."""
    from netreveal.data.stream import read_all

    inputs = read_all(partsworld_source(adapter, n, seed, split), Reading.for_model(adapter), workers=0)
    inputs.class_definitions = {name: list(parts) for name, parts in CLASSES.items()}
    return inputs
