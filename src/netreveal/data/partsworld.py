"""Parts world: a synthetic image classification task with pixel-exact ground truth.

Every class is defined by a combination of two or three named parts (``CLASSES``); the parts are
simple shapes (``PART_TYPES``) drawn at random places, sizes, rotations and colours on random
clutter. Each image also gets 0-2 distractor parts, chosen so that the image's full set of parts
never contains another class's defining set: the class is determined by the combination, and
every part type used by a class also appears in other classes or as a distractor, so no single
part decides the class.

Ground truth per drawn part: its type, whether it is one of the class's defining parts, a boolean
mask of exactly the pixels where it was painted, and its bounding box. A part's coverage is
computed at 4x supersampling; coverage below ``ALPHA_THRESHOLD`` is not painted at all, so the
mask is exactly the set of pixels whose value the part changed (the image is the background
everywhere else, see :meth:`PartsWorld.background`). Parts never overlap.

Determinism: an image depends only on ``(seed, split, index)`` and the generator settings, never
on which images were generated before it. Splits (``"train"``, ``"val"``, ``"test"``) use disjoint
random streams (the split is part of the seed sequence), so they share no image; the class of an
image is ``index % num_classes``. The shipped demo model was trained on ``split="train"`` and
evaluated on ``split="test"`` (the held-out split).

Boxes are ``(x0, y0, x1, y1)`` in pixels with exclusive ends, i.e. ``mask[y0:y1, x0:x1]`` holds the
whole mask.

On disk (:meth:`PartsWorld.write_folder`): ``root/<class>/<split>_<index>.png`` with a compressed
``<split>_<index>.npz`` next to each png (``masks`` (P, H, W) bool, ``parts``, ``defining``,
``boxes``), and ``root/partsworld.json`` with the class and part definitions, the generator settings
and the per-image part metadata. :func:`load_ground_truth` reads the masks back.

This module holds the generator; its pieces live beside it: ``partsworld_vocabulary`` (parts,
synonyms, classes), ``partsworld_shapes`` (drawing one part), ``partsworld_clutter`` (background
and colours), ``partsworld_layout`` (which parts go where) and ``partsworld_folder`` (files on disk).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from netreveal.data import partsworld_folder
from netreveal.data.partsworld_clutter import clutter_background, contrasting_colour, quantise
from netreveal.data.partsworld_folder import load_ground_truth, load_metadata
from netreveal.data.partsworld_layout import choose_parts, place_parts
from netreveal.data.partsworld_shapes import part_coverage
from netreveal.data.partsworld_vocabulary import (
    CLASSES,
    PART_TYPES,
    PartType,
    check_classes,
    class_names,
    part_names,
    synonym_lookup,
)
from netreveal.errors import NetrevealError

__all__ = ["CLASSES", "PART_TYPES", "SPLITS", "PartType", "PartsWorld", "Sample", "class_names",
           "load_ground_truth", "load_metadata", "part_names", "synonym_lookup"]

SPLITS = {"train": 0, "val": 1, "test": 2}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise NetrevealError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


@dataclass
class Sample:
    """One parts-world image with its ground truth.

    ``masks[i]``, ``parts[i]``, ``defining[i]`` and ``boxes[i]`` describe the i-th drawn part;
    boxes are ``(x0, y0, x1, y1)`` with exclusive ends. ``index`` and ``split`` say where the image
    comes from: ``PartsWorld(seed=...).sample(index, split)`` renders it again.
    """

    image: torch.Tensor
    label: int
    class_name: str
    masks: torch.Tensor
    parts: list[str]
    defining: list[bool]
    boxes: list[tuple[int, int, int, int]]
    index: int = -1
    split: str = "train"


@dataclass
class _DrawnPart:
    """A part as painted: its coverage (h, w) in the pixel box starting at ``(x0, y0)``."""

    name: str
    defining: bool
    x0: int
    y0: int
    alpha: np.ndarray

    def mask_and_box(self, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The part's (size, size) bool mask and its tight box (exclusive ends)."""
        mask = np.zeros((size, size), dtype=bool)
        local = self.alpha > 0
        h, w = local.shape
        mask[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = local
        ys, xs = np.nonzero(local)
        box = (
            int(self.x0 + xs.min()),
            int(self.y0 + ys.min()),
            int(self.x0 + xs.max() + 1),
            int(self.y0 + ys.max() + 1),
        )
        return mask, box


class PartsWorld(Dataset):
    """Seeded parts-world generator; also a map-style ``Dataset`` of ``(image, label)`` pairs.

    ``sample(index)`` renders image ``index`` of ``split`` with all its ground truth; ``len()`` is
    ``length`` (the dataset view only; any non-negative index can be sampled).
    """

    def __init__(
        self,
        size: int = 64,
        seed: int = 0,
        split: str = "train",
        length: int = 10_000,
        max_distractors: int = 2,
        classes: Mapping[str, Sequence[str]] | None = None,
        scale: tuple[float, float] = (0.115, 0.165),
        clutter: float = 1.0,
    ):
        if not 32 <= size <= 512:
            raise NetrevealError(f"parts world image size must be in 32..512, got {size}")
        _check_split(split)
        if max_distractors < 0:
            raise NetrevealError("max_distractors must be >= 0")
        if not 0 < scale[0] <= scale[1] < 0.3:
            raise NetrevealError(f"part scale must satisfy 0 < min <= max < 0.3, got {scale}")
        self.size = int(size)
        self.seed = int(seed)
        self.split = split
        self.length = int(length)
        self.max_distractors = int(max_distractors)
        self.classes = check_classes(CLASSES if classes is None else classes)
        self.class_names = list(self.classes)
        self.scale = (float(scale[0]), float(scale[1]))
        self.clutter = float(clutter)

    # -- dataset view
    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        image, label, _ = self._render(i, self.split)
        return torch.from_numpy(image), label

    @property
    def num_classes(self) -> int:
        """How many classes (labels are ``0 .. num_classes - 1``)."""
        return len(self.classes)

    def settings(self) -> dict:
        """The generator settings that, with (split, index), determine an image."""
        return {
            "size": self.size,
            "seed": self.seed,
            "max_distractors": self.max_distractors,
            "scale": list(self.scale),
            "clutter": self.clutter,
            "classes": {k: list(v) for k, v in self.classes.items()},
        }

    # -- public rendering
    def sample(self, index: int, split: str | None = None) -> Sample:
        """Image ``index`` of ``split`` (default: this generator's split) with its ground truth."""
        split = self.split if split is None else split
        _check_split(split)
        image, label, parts = self._render(int(index), split)
        masks = np.zeros((len(parts), self.size, self.size), dtype=bool)
        boxes = []
        for k, part in enumerate(parts):
            masks[k], box = part.mask_and_box(self.size)
            boxes.append(box)
        return Sample(
            image=torch.from_numpy(image),
            label=label,
            class_name=self.class_names[label],
            masks=torch.from_numpy(masks),
            parts=[p.name for p in parts],
            defining=[p.defining for p in parts],
            boxes=boxes,
            index=int(index),
            split=split,
        )

    def batch(
        self, indices: Sequence[int], split: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
        """Images (B, 3, H, W), labels (B,) and the full samples for ``indices``."""
        samples = [self.sample(i, split) for i in indices]
        images = (
            torch.stack([s.image for s in samples])
            if samples
            else torch.zeros(0, 3, self.size, self.size)
        )
        labels = torch.tensor([s.label for s in samples], dtype=torch.long)
        return images, labels, samples

    def background(self, index: int, split: str | None = None) -> torch.Tensor:
        """The clutter image ``index`` is drawn on: equal to the image outside its part masks."""
        split = self.split if split is None else split
        bg = clutter_background(self._rng(index, split, 0), self.size, self.clutter)
        return torch.from_numpy(quantise(bg).transpose(2, 0, 1).copy())

    def label_of(self, index: int) -> int:
        """The class label of image ``index`` (any split)."""
        return int(index) % self.num_classes

    def write_folder(
        self,
        root: str | os.PathLike,
        n_per_class: int,
        split: str = "test",
        start_index: int = 0,
        progress: bool = False,
    ) -> Path:
        """Write ``n_per_class`` images of each class of ``split`` as an image folder with masks.

        Uses indices ``start_index .. start_index + n_per_class * num_classes - 1``. Layout:
        ``root/<class>/<split>_<index:07d>.png`` + ``.npz`` masks next to it, and
        ``root/partsworld.json`` (merged with an existing one written with the same settings).
        """
        _check_split(split)
        return partsworld_folder.write_folder(self, root, n_per_class, split, start_index, progress)

    # -- internals
    def _rng(self, index: int, split: str, stream: int) -> np.random.Generator:
        """Stream 0 draws the background, stream 1 the parts: both depend only on the image."""
        if index < 0:
            raise NetrevealError(f"parts world index must be >= 0, got {index}")
        return np.random.default_rng([self.seed, SPLITS[split], int(index), stream])

    def _render(self, index: int, split: str) -> tuple[np.ndarray, int, list[_DrawnPart]]:
        """The (3, H, W) image, its label and its parts as painted."""
        label = self.label_of(index)
        img = clutter_background(self._rng(index, split, 0), self.size, self.clutter)
        rng = self._rng(index, split, 1)
        chosen = choose_parts(self.classes, self.class_names[label], self.max_distractors, rng)
        layout = place_parts(len(chosen), self.size, self.scale, rng)
        parts = []
        for (name, is_defining), (cx, cy, r) in zip(chosen, layout):
            angle = float(rng.uniform(0, 2 * math.pi))
            x0, y0, alpha = part_coverage(name, cx, cy, r, angle, self.size, rng)
            h, w = alpha.shape
            region = img[y0 : y0 + h, x0 : x0 + w]
            colour = contrasting_colour(region, rng)
            # a gentle linear shading across the part
            direction = rng.uniform(-1, 1, size=2).astype(np.float32)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ramp = ((xx - w / 2) * direction[0] + (yy - h / 2) * direction[1]) / max(r, 1.0)
            shade = np.clip(colour[None, None, :] * (1 + 0.12 * ramp[..., None]), 0.0, 1.0)
            a = alpha[..., None]
            img[y0 : y0 + h, x0 : x0 + w] = region * (1 - a) + shade * a
            parts.append(_DrawnPart(name, is_defining, x0, y0, alpha))
        image = quantise(img).transpose(2, 0, 1).copy()
        return image, label, parts
