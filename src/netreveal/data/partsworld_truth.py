"""The parts world as a source of ground truth: part masks written beside each image by
``PartsWorld.write_folder`` (class evidence: the union of the parts that define the class), and
generated held-out images with their masks."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from netreveal.data.groundtruth import Truth
from netreveal.data.images import label_index
from netreveal.data.inputs import Inputs
from netreveal.data.partsworld import CLASSES, PartsWorld, load_ground_truth
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


def partsworld_inputs(adapter: ModelAdapter, n: int, seed: int = 0, split: str = "test") -> Inputs:
    """``n`` held-out parts-world images (classes in turn) with their defining-part masks as ground truth."""
    if n < 1:
        raise NetrevealError("need at least one image")
    world = PartsWorld(size=adapter.input_size, seed=seed, split=split)
    images, _, samples = world.batch(range(n))
    masks = [s.masks[torch.tensor(s.defining)].any(dim=0) for s in samples]
    keys = [f"{s.class_name}-{s.index:03d}" for s in samples]
    names = [s.class_name for s in samples]
    return Inputs(keys, images, [label_index(c, adapter.class_names) for c in names], names, list(masks),
                  [s.masks for s in samples],
                  class_definitions={name: list(parts) for name, parts in world.classes.items()})
