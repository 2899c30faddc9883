"""Placing the graph's edge labels ("-P24") where they overlap neither each other nor a node."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # left, top, right, bottom

# Candidate spots along an edge, as the share of the way from parent to child: near the child first
# (where the edge is easiest to tell apart from its siblings), then further up.
ALONG = (0.72, 0.6, 0.84, 0.48, 0.36, 0.24, 0.9)
BIN = 64.0  # width in pixels of the vertical strips boxes are filed under


def label_size(text: str, font_size: float) -> tuple[float, float]:
    """A generous (width, height) of ``text`` in a sans-serif font of ``font_size`` pixels, halo
    included: wide glyphs (digits, capitals) take about 0.62 em."""
    return 0.66 * font_size * len(text) + 4, font_size + 3


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Boxes:
    """Boxes filed by vertical strip, so that a test looks only at its neighbours."""

    def __init__(self, boxes: Sequence[Box] = ()) -> None:
        self.strips: dict[int, list[Box]] = {}
        for box in boxes:
            self.add(box)

    def _strips(self, box: Box) -> range:
        return range(int(box[0] // BIN), int(box[2] // BIN) + 1)

    def add(self, box: Box) -> None:
        for k in self._strips(box):
            self.strips.setdefault(k, []).append(box)

    def hits(self, box: Box) -> bool:
        return any(_overlaps(box, other) for k in self._strips(box) for other in self.strips.get(k, ()))


def place_labels(
    segments: Sequence[tuple[float, float, float, float]],
    texts: Sequence[str],
    obstacles: Sequence[Box],
    font_size: float,
) -> list[tuple[float, float] | None]:
    """The centre of each label on its segment ``(x1, y1, x2, y2)`` so that no two labels and no
    label and obstacle (node boxes) overlap; None where no candidate spot is free."""
    taken = _Boxes(obstacles)
    out: list[tuple[float, float] | None] = []
    for (x1, y1, x2, y2), text in zip(segments, texts, strict=True):
        w, h = label_size(text, font_size)
        spot = None
        for t in ALONG:
            cx, cy = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            if not taken.hits(box):
                spot = (cx, cy)
                taken.add(box)
                break
        out.append(spot)
    return out
