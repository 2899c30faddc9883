"""Looking at results from Python: a heatmap over its image as a picture, and a whole result as one
matplotlib figure.

    import netreveal
    netreveal.show(image, result.maps[0]).save("overlay.png")   # a PIL image
    netreveal.figure(result, images)                             # a matplotlib Figure

:func:`show` uses the reports' colour map (dark purple = 0, pale yellow = 1) and their blending:
``colour(heatmap) * alpha + image * (1 - alpha)``. :func:`figure` needs matplotlib (``pip install
'netreveal[plot]'``); it draws one axis per panel, the panels of each result type coming from
:mod:`netreveal.viewing_panels`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from netreveal.errors import NetrevealError
from netreveal.report.render import LUT, blend, to_numpy_image

PANEL_INCHES = 2.8  # the side of one panel
MAX_COLUMNS = 4


def image_array(image: Any) -> np.ndarray:
    """An image as (H, W, 3) uint8: a PIL image, a tensor (3, H, W) or (1, H, W) in [0, 1], or an
    array (H, W, 3) / (H, W) of uint8 or of floats in [0, 1]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise NetrevealError(f"an image tensor must be (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        return to_numpy_image(image.expand(3, -1, -1))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise NetrevealError(f"an image array must be (H, W, 3) or (H, W), got {array.shape}")
    if array.dtype == np.uint8:
        return array
    return (np.clip(array.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)


def heatmap_array(heatmap: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """A heatmap as (H, W) floats clipped to [0, 1], resized (bilinear) to ``size`` (H, W) if given."""
    values = heatmap.detach().float().cpu() if isinstance(heatmap, torch.Tensor) else torch.as_tensor(
        np.asarray(heatmap, dtype=np.float32))
    values = values.squeeze()
    if values.dim() != 2:
        raise NetrevealError(f"a heatmap must be (H, W), got {tuple(values.shape)}")
    if size is not None and tuple(values.shape) != tuple(size):
        values = torch.nn.functional.interpolate(values[None, None], size=tuple(size), mode="bilinear",
                                                 align_corners=False)[0, 0]
    return values.clamp(0, 1).numpy()


def colour(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through the reports' colour map."""
    return LUT[np.round(np.asarray(heatmap) * 255).astype(np.int64)]


def show(image: Any, heatmap: Any, alpha: float = 0.55) -> Image.Image:
    """``heatmap`` (H, W; values in [0, 1], others clipped) over ``image`` as a PIL image:
    ``colour(heatmap) * alpha + image * (1 - alpha)`` per pixel, rounded (the reports' overlay).
    A heatmap of another size is resized to the image first. ``alpha`` is in [0, 1]."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise NetrevealError(f"alpha must be between 0 and 1, got {alpha}")
    base = image_array(image)
    return Image.fromarray(blend(base, colour(heatmap_array(heatmap, base.shape[:2])), alpha))


def figure(result: Any, images: Any = None) -> Any:
    """One matplotlib ``Figure`` of any netreveal result, one axis per panel: a heatmap per image
    (over the image when ``images`` are given: a (B, 3, H, W) tensor or a list of pictures),
    INV's combined map per image and layer, each minimal sufficient patch set of SAG, deletion and
    insertion curves per image, TCAV scores per layer."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise NetrevealError("netreveal.figure needs matplotlib: pip install 'netreveal[plot]'") from exc
    from netreveal.viewing_panels import panels_of

    panels = panels_of(result, _images(images))
    if not panels:
        raise NetrevealError(f"this {type(result).__name__} has nothing to draw")
    columns = min(MAX_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows + 0.3), layout="constrained")
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, columns, k + 1)
        panel.draw(ax)
        ax.set_title(panel.title, fontsize=9)
    return fig


def _images(images: Any) -> list[np.ndarray] | None:
    if images is None:
        return None
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise NetrevealError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return [image_array(im) for im in images]
    return [image_array(im) for im in images]


__all__ = ["colour", "figure", "heatmap_array", "image_array", "show"]
