"""Where a run's images come from, behind one small interface: a source knows how many images it
has, reads any one of them for a model (with its key, label and ground truth), cuts itself into
slices of consecutive images, and describes itself in plain data (for a run's manifest).

Sources are plain, picklable values (paths, indices, settings; never tensors), so a slice can
travel to a worker process and be read there. Two kinds exist: :class:`FolderSource` (an image
folder) and ``netreveal.data.partsworld_truth.PartsWorldSource`` (generated parts-world images).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from netreveal.data.groundtruth import DEFAULT_LOADER, GroundTruth, ground_truth_loader
from netreveal.data.images import image_records, label_index, load_image
from netreveal.errors import NetrevealError

if TYPE_CHECKING:
    import torch

    from netreveal.model.adapter import ModelAdapter
    from netreveal.model.preprocess import Preprocessor


@dataclass(frozen=True)
class Reading:
    """What reading an image for a model needs: its preparation, input side and class names."""

    preprocess: Preprocessor
    input_size: int
    class_names: tuple[str, ...]

    @classmethod
    def for_model(cls, adapter: ModelAdapter) -> Reading:
        return cls(adapter.preprocessor(), int(adapter.input_size), tuple(adapter.class_names))


@dataclass
class ImageItem:
    """One image read for a model: (3, S, S) in [0, 1], with what is known about it."""

    key: str
    image: torch.Tensor
    label: int | None
    label_name: str | None
    mask: torch.Tensor | None
    parts: torch.Tensor | None


@runtime_checkable
class ImageSource(Protocol):
    """A numbered list of images; ``item(i, reading)`` reads image ``i`` (0-based) of this source."""

    def __len__(self) -> int: ...

    def item(self, index: int, reading: Reading) -> ImageItem: ...

    def slice(self, start: int, stop: int) -> ImageSource: ...

    def describe(self) -> dict[str, Any]: ...


def list_hash(names: list[str]) -> str:
    """A short hash of an ordered list of image names (which images a run covers, in which order)."""
    return hashlib.sha256(json.dumps(names).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class FolderSource:
    """The images of a folder (or one image file), sorted as :func:`~netreveal.data.images.list_images`
    lists them; keys are paths relative to ``root`` (see :func:`netreveal.pipeline.image_key`)."""

    root: str
    paths: tuple[str, ...]
    label_names: tuple[str | None, ...]
    ground_truth: str | GroundTruth = DEFAULT_LOADER

    @classmethod
    def from_folder(cls, root: str | os.PathLike, limit: int | None = None,
                    ground_truth: str | GroundTruth = DEFAULT_LOADER) -> FolderSource:
        """Every image under ``root`` (at most ``limit``); the folder is listed, no image is read."""
        if limit is not None and limit < 1:
            raise NetrevealError(f"--limit must be at least 1, got {limit}")
        ground_truth_loader(ground_truth)  # an unknown loader name fails here
        root = os.path.abspath(root)  # work items may be read in another process or place
        records = image_records(root)[:limit]
        return cls(str(root), tuple(str(r.path) for r in records), tuple(r.label_name for r in records),
                   ground_truth)

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, index: int) -> str:
        root, path = Path(self.root), Path(self.paths[index])
        return path.relative_to(root).as_posix() if root.is_dir() else path.name

    def item(self, index: int, reading: Reading) -> ImageItem:
        path, name = self.paths[index], self.label_names[index]
        image = reading.preprocess(load_image(path))
        found = ground_truth_loader(self.ground_truth).load(path, name, reading.input_size)
        return ImageItem(self.key(index), image, label_index(name, list(reading.class_names)), name,
                         None if found is None else found.evidence, None if found is None else found.parts)

    def slice(self, start: int, stop: int) -> FolderSource:
        return replace(self, paths=self.paths[start:stop], label_names=self.label_names[start:stop])

    def describe(self) -> dict[str, Any]:
        keys = [self.key(i) for i in range(len(self))]
        loader = ground_truth_loader(self.ground_truth).name
        return {"kind": "folder", "root": str(Path(self.root).resolve()), "images": len(self),
                "list_hash": list_hash([f"{k}\t{n}" for k, n in zip(keys, self.label_names)]),
                "ground_truth": loader}


__all__ = ["FolderSource", "ImageItem", "ImageSource", "Reading", "list_hash"]
