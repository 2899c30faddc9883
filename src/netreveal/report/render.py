"""Turning tensors into pictures: colour maps, overlays, PNG files."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Anchor colours of a perceptually ordered dark-to-bright map (black-purple-red-orange-yellow-white).
ANCHORS = np.array(
    [
        [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99],
        [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164],
    ],
    dtype=np.float32,
)


def _lut(n: int = 256) -> np.ndarray:
    x = np.linspace(0, len(ANCHORS) - 1, n)
    lo = np.floor(x).astype(int).clip(0, len(ANCHORS) - 2)
    t = (x - lo)[:, None]
    return ((1 - t) * ANCHORS[lo] + t * ANCHORS[lo + 1]).round().astype(np.uint8)


LUT = _lut()


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return (array * 255).round().astype(np.uint8)


def colorize(heatmap: torch.Tensor) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through the colour map (values outside are clipped)."""
    idx = (heatmap.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.int64)
    return LUT[idx]


def blend(base: np.ndarray, heat: np.ndarray, alpha: float) -> np.ndarray:
    """``heat * alpha + base * (1 - alpha)`` per pixel of two (H, W, 3) uint8 pictures, rounded."""
    out = float(alpha) * heat.astype(np.float64) + (1.0 - float(alpha)) * base.astype(np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def overlay(image: torch.Tensor, heatmap: torch.Tensor, alpha: float = 0.55) -> np.ndarray:
    """The heatmap blended over a dimmed image: (H, W, 3) uint8 (:func:`blend` of its colours)."""
    return blend(to_numpy_image(image), colorize(heatmap), alpha)


def to_pil(array: np.ndarray | torch.Tensor, min_size: int = 192) -> Image.Image:
    """A picture for the report, enlarged so small inputs (64 px) stay legible."""
    if isinstance(array, torch.Tensor):
        array = to_numpy_image(array)
    image = Image.fromarray(array)
    if min(image.size) < min_size:
        scale = min_size / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    return image


BOX_COLOUR = (0, 229, 255)


def draw_box(picture: np.ndarray, box, colour=BOX_COLOUR) -> np.ndarray:
    """A rectangle outline (x0, y0, x1, y1; exclusive ends) drawn on an (H, W, 3) uint8 picture,
    about 1/64 of the image side thick."""
    out = picture.copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
    x1, y1 = max(x0 + 1, min(x1, w)), max(y0 + 1, min(y1, h))
    t = max(1, min(h, w) // 64)
    out[y0 : min(y0 + t, y1), x0:x1] = colour
    out[max(y1 - t, y0) : y1, x0:x1] = colour
    out[y0:y1, x0 : min(x0 + t, x1)] = colour
    out[y0:y1, max(x1 - t, x0) : x1] = colour
    return out


def shrink(picture: np.ndarray, side: int) -> np.ndarray:
    """A picture whose short side exceeds ``side`` scaled down to it (thumbnails stay small)."""
    h, w = picture.shape[:2]
    if min(h, w) <= side:
        return picture
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(picture).resize(size, Image.BILINEAR))
