"""Reading user images safely: folders of images (flat or ImageNet/Imagenette class layout).

Every failure is a :class:`NetrevealError` with one line naming the file: missing path, empty
folder, a file that is not an image, a truncated image, an image so large it may be a
decompression bomb.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from netreveal.errors import NetrevealError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
MAX_PIXELS = 40_000_000  # ~ a 6300x6300 photo; far above what a classifier needs


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursively, sorted), or ``[root]`` if it is a file."""
    root = Path(root)
    if not root.exists():
        raise NetrevealError(f"path not found: {root}")
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise NetrevealError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, check and fully decode one image as RGB."""
    path = Path(path)
    if not path.is_file():
        raise NetrevealError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise NetrevealError(
                        f"image too large: {path} is {width}x{height} pixels "
                        f"(limit {max_pixels:,}; decompression bomb?)"
                    )
                image.load()
                return image.convert("RGB")
    except NetrevealError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NetrevealError(f"image too large: {path} (decompression bomb?)") from exc
    except UnidentifiedImageError as exc:
        raise NetrevealError(f"not an image file: {path}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise NetrevealError(f"cannot read image {path}: truncated or corrupt ({exc})".splitlines()[0]) from exc


@dataclass
class ImageRecord:
    """One image of a folder and the class its sub-folder names (``None`` in a flat folder)."""

    path: Path
    label_name: str | None


def image_records(root: str | os.PathLike) -> list[ImageRecord]:
    """All images under ``root``; in a class layout (root/CLASS/img) each carries its class name."""
    root = Path(root)
    files = list_images(root)
    records = []
    for path in files:
        rel = path.relative_to(root) if root.is_dir() else Path(path.name)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        records.append(ImageRecord(path=path, label_name=label))
    return records


def label_index(label_name: str | None, class_names: list[str]) -> int | None:
    """The model's index for a folder's class name (exact name, or an ImageNet-style 'n01440764')."""
    if label_name is None:
        return None
    if label_name in class_names:
        return class_names.index(label_name)
    lowered = [c.lower() for c in class_names]
    if label_name.lower() in lowered:
        return lowered.index(label_name.lower())
    return None
