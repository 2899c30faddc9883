"""A concept model's training images by index, rendered or read again (prototypes, top images)."""

from __future__ import annotations

from pathlib import Path

import torch

from netreveal.concepts.infodisent import InfoDisentHead
from netreveal.concepts.xnn import XNN


class TrainingImages:
    """A concept model's training images by index, rendered or read again (and cached).

    ``source`` is the dict a concept model keeps in ``info["source"]``:
    ``{"kind": "partsworld", "settings": PartsWorld.settings(), "split", "start", "count"}`` (index i
    is parts-world image ``start + i`` of ``split``) or ``{"kind": "folder", "root", "image_size",
    "resize_ratio"}`` with ``keys[i]`` the file of index i relative to ``root``.
    """

    def __init__(self, source: dict | None, keys: list | None = None):
        self.source = source or {}
        self.keys = keys
        self._world = None
        self._cache: dict[int, tuple[torch.Tensor | None, object]] = {}

    @classmethod
    def of(cls, model: InfoDisentHead | XNN) -> TrainingImages:
        keys = (
            model.prototypes.keys
            if isinstance(model, InfoDisentHead) and model.prototypes
            else None
        )
        if isinstance(model, XNN):
            keys = model.keys
        return cls(model.info.get("source"), keys)

    def name(self, index: int) -> str:
        """How to call training image ``index`` in a caption."""
        if self.keys is not None and 0 <= index < len(self.keys):
            return str(self.keys[index])
        if self.source.get("kind") == "partsworld":
            return (
                f"{self.source.get('split', 'train')} #{int(self.source.get('start', 0)) + index}"
            )
        return f"training image #{index}"

    def get(self, index: int) -> tuple[torch.Tensor | None, object]:
        """The image (3, H, W) in [0, 1] (None when it cannot be found) and its parts-world sample
        (for the part under a box; None for other sources)."""
        if index not in self._cache:
            self._cache[index] = self._load(index)
        return self._cache[index]

    def _load(self, index: int):
        kind = self.source.get("kind")
        if kind == "partsworld":
            if self._world is None:
                from netreveal.data.partsworld import PartsWorld

                s = self.source["settings"]
                self._world = PartsWorld(
                    size=s["size"],
                    seed=s["seed"],
                    split=self.source.get("split", "train"),
                    max_distractors=s["max_distractors"],
                    scale=tuple(s["scale"]),
                    clutter=s["clutter"],
                    classes=s["classes"],
                )
            sample = self._world.sample(int(self.source.get("start", 0)) + index)
            return sample.image, sample
        if kind == "folder" and self.keys is not None and 0 <= index < len(self.keys):
            path = Path(self.source["root"]) / str(self.keys[index])
            if not path.is_file():
                return None, None
            from torchvision.transforms import functional as TF

            from netreveal.data.images import load_image

            size = [int(v) for v in self.source["image_size"]]
            image = load_image(path)
            short = round(min(size) / float(self.source.get("resize_ratio", 1.0)))
            image = TF.center_crop(TF.resize(image, short, antialias=True), size)
            return TF.to_tensor(image), None
        return None, None
