"""Pictures the concept sections share: figures with captions, and thumbnails of a concept
model's training images (each written once per report)."""

from __future__ import annotations

import html

import numpy as np
import torch

from netreveal.concepts.training_images import TrainingImages
from netreveal.imaging import minmax
from netreveal.report.html import Report
from netreveal.report.render import draw_box, overlay, shrink, to_numpy_image

PROTOTYPE_PX = 96  # prototype / top-image thumbnails in the report


def figure(src: str, alt: str, caption: str, width: int = 192) -> str:
    return (
        f'<figure style="width:{width}px"><img src="{src}" alt="{html.escape(alt)}" '
        f'style="width:{width}px"><figcaption>{caption}</figcaption></figure>'
    )


def thumb_figure(src: str | None, alt: str, caption: str) -> str:
    """A training-image thumbnail (prototype, top image) with its caption; sized by the page's CSS
    (``figure.thumb``: smaller on phones so a row of five fits). A grey square when ``src`` is None."""
    picture = (f'<img src="{src}" alt="{html.escape(alt)}">' if src
               else '<div class="thumb-missing" role="img" aria-label="training image not found"></div>')
    return f'<figure class="thumb">{picture}<figcaption>{caption}</figcaption></figure>'


def fmt(x: float) -> str:
    return f"{x:.3g}"


def part_under(sample, box) -> str | None:
    """The parts-world part covering most of ``box`` on a training sample (None: no sample)."""
    if sample is None:
        return None
    from netreveal.concepts.prototypes import box_part

    return box_part(list(box), sample.masks, sample.parts)


class Thumbs:
    """Thumbnails of training images, each written once per report."""

    def __init__(self, report: Report, images: TrainingImages, stem: str):
        self.report, self.images, self.stem = report, images, stem
        self.srcs: dict[tuple, str | None] = {}

    def picture(self, key: tuple, index: int, heatmap: torch.Tensor | None = None,
                box=None) -> tuple[str | None, object]:
        """The report path of training image ``index`` (with ``heatmap`` and ``box`` drawn on it;
        None when it cannot be found) and its parts-world sample."""
        image, sample = self.images.get(index)
        if key not in self.srcs:
            if image is None:
                self.srcs[key] = None
            else:
                pic: np.ndarray = (
                    overlay(image, minmax(heatmap.float()[None])[0], alpha=0.45)
                    if heatmap is not None
                    else to_numpy_image(image)
                )
                if box is not None:
                    pic = draw_box(pic, box)
                pic = shrink(pic, 2 * PROTOTYPE_PX)
                self.srcs[key] = self.report.save_picture(
                    pic, f"{self.stem}-{'-'.join(map(str, key))}", min_size=PROTOTYPE_PX
                )
        return self.srcs[key], sample
