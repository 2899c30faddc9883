"""Parts-world images on disk: an image folder with the part masks beside each image.

Layout: ``root/<class>/<split>_<index:07d>.png`` with a compressed ``.npz`` next to each png
(``masks`` (P, H, W) bool, ``parts``, ``defining``, ``boxes``), and ``root/partsworld.json`` with
the class and part definitions, the generator settings and the per-image part metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from netreveal.data.partsworld_vocabulary import PART_TYPES
from netreveal.errors import NetrevealError

if TYPE_CHECKING:
    from netreveal.data.partsworld import PartsWorld, Sample

FORMAT_NAME = "netreveal-partsworld"
FORMAT_VERSION = 1
META_FILE = "partsworld.json"


def write_folder(
    world: PartsWorld,
    root: str | os.PathLike,
    n_per_class: int,
    split: str,
    start_index: int = 0,
    progress: bool = False,
) -> Path:
    """Write images ``start_index .. start_index + n_per_class * num_classes - 1`` of ``split`` under
    ``root`` with their masks; ``partsworld.json`` is merged with an existing one written with the
    same settings (other settings raise)."""
    from tqdm.auto import tqdm

    if n_per_class < 1 or start_index < 0:
        raise NetrevealError("write_folder needs n_per_class >= 1 and start_index >= 0")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / META_FILE
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "settings": world.settings(),
        "class_names": world.class_names,
        "part_types": {p.name: list(p.synonyms) for p in PART_TYPES.values()},
        "box_format": "x0, y0, x1, y1 in pixels, exclusive ends",
        "images": {},
    }
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("format") != FORMAT_NAME or old.get("settings") != meta["settings"]:
            raise NetrevealError(
                f"{meta_path} was written with other parts-world settings; use another folder"
            )
        meta["images"] = old.get("images", {})
    indices = range(start_index, start_index + n_per_class * world.num_classes)
    for index in tqdm(indices, desc=f"parts world {split}", disable=not progress):
        sample = world.sample(index, split)
        rel = _write_sample(root, sample)
        meta["images"][rel] = {
            "split": split,
            "index": index,
            "label": sample.label,
            "class_name": sample.class_name,
            "parts": sample.parts,
            "defining": sample.defining,
            "boxes": [list(b) for b in sample.boxes],
        }
    meta_path.write_text(json.dumps(meta, indent=1))
    return root


def _write_sample(root: Path, sample: Sample) -> str:
    """Save one sample's png and npz under ``root``; returns the png's path relative to ``root``."""
    folder = root / sample.class_name
    folder.mkdir(exist_ok=True)
    stem = f"{sample.split}_{sample.index:07d}"
    pixels = (sample.image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(pixels).save(folder / f"{stem}.png")
    np.savez_compressed(
        folder / f"{stem}.npz",
        masks=sample.masks.numpy(),
        parts=np.array(sample.parts, dtype=str),
        defining=np.array(sample.defining, dtype=bool),
        boxes=np.array(sample.boxes, dtype=np.int64).reshape(-1, 4),
    )
    return f"{sample.class_name}/{stem}.png"


def load_ground_truth(image_path: str | os.PathLike) -> tuple[torch.Tensor, list[str]] | None:
    """Part masks (P, H, W) bool and part names of an image written by ``write_folder``, else None."""
    path = Path(image_path).with_suffix(".npz")
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "masks" not in data or "parts" not in data:
            return None
        masks = torch.from_numpy(data["masks"].astype(bool))
        parts = [str(p) for p in data["parts"]]
    return masks, parts


def load_metadata(root: str | os.PathLike) -> dict | None:
    """The ``partsworld.json`` of a folder written by ``write_folder`` (None if there is none)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())
