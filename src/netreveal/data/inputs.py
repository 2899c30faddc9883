"""A batch of images ready for the model, with what is known about each (labels, ground truth)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Inputs:
    """Images (B, 3, H, W) in [0, 1] with a key, a label and, when known, ground truth per image.

    ``masks[i]`` (H, W) bool is where the evidence for image i's class lies (pointing game, energy);
    ``part_masks[i]`` (P, H, W) bool every annotated part of it (INV alignment). Both are None for
    an image without ground truth (see :mod:`netreveal.data.groundtruth`). ``class_definitions``,
    when the ground truth defines its classes, maps each class to the parts that make it (shown in
    reports).
    """

    keys: list[str]  # unique names, e.g. each image's path relative to the folder read
    images: torch.Tensor
    labels: list[int | None]
    label_names: list[str | None]
    masks: list[torch.Tensor | None]
    part_masks: list[torch.Tensor | None] | None = None
    class_definitions: dict[str, list[str]] | None = None
