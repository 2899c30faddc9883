"""The parts world's part shapes and how one part is rasterised into a coverage map.

Each shape is drawn in a unit disc (radius 1) by a :class:`Pen` that scales, rotates and places it
on a supersampled canvas; :func:`part_coverage` averages the canvas down to pixels and drops
coverage below ``ALPHA_THRESHOLD``, so a part's mask is exactly the set of pixels it paints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4
ALPHA_THRESHOLD = 0.25  # coverage below this is not painted (so masks and pixels agree exactly)

Point = tuple[float, float]


def _rotate(points: Sequence[Point], angle: float) -> list[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _square(half: float) -> list[Point]:
    return [(-half, -half), (half, -half), (half, half), (-half, half)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class Pen:
    """Draws unit-disc shapes (radius 1, rotation ``angle``) onto a supersampled 'L' canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float):
        self.draw, self.cx, self.cy, self.r, self.angle = draw, cx, cy, r, angle

    def _map(self, points: Sequence[Point]) -> list[Point]:
        return [(self.cx + x * self.r, self.cy + y * self.r) for x, y in _rotate(points, self.angle)]

    def polygon(self, points: Sequence[Point], fill: int = 255) -> None:
        """A filled polygon (``fill=0`` cuts a hole)."""
        self.draw.polygon(self._map(points), fill=fill)

    def disc(self, x: float, y: float, radius: float, fill: int = 255) -> None:
        """A filled disc (``fill=0`` cuts a hole)."""
        (px, py), rr = self._map([(x, y)])[0], radius * self.r
        self.draw.ellipse((px - rr, py - rr, px + rr, py + rr), fill=fill)

    def polyline(self, points: Sequence[Point], width: float) -> None:
        """A thick line through ``points`` with round joints and caps."""
        w = max(1, round(width * self.r))
        self.draw.line(self._map(points), fill=255, width=w, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps
            self.disc(x, y, width / 2)


def _wheel(pen: Pen, rng: np.random.Generator) -> None:
    pen.disc(0, 0, 0.95)
    pen.disc(0, 0, 0.62, fill=0)
    pen.disc(0, 0, 0.27)


def _wing(pen: Pen, rng: np.random.Generator) -> None:
    pen.polygon([(-0.75, -0.7), (0.85, 0.55), (-0.75, 0.55)])


def _star(pen: Pen, rng: np.random.Generator) -> None:
    pts = []
    for k in range(10):
        rad = 0.98 if k % 2 == 0 else 0.42
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((rad * math.cos(a), rad * math.sin(a)))
    pen.polygon(pts)


def _stripes(pen: Pen, rng: np.random.Generator) -> None:
    for x0 in (-0.7, -0.14, 0.42):
        pen.polygon(_rect(x0, -0.7, x0 + 0.28, 0.7))


def _cross(pen: Pen, rng: np.random.Generator) -> None:
    pen.polygon(_rect(-0.93, -0.24, 0.93, 0.24))
    pen.polygon(_rect(-0.24, -0.93, 0.24, 0.93))


def _checkerboard(pen: Pen, rng: np.random.Generator) -> None:
    n, half = 4, 0.7
    cell = 2 * half / n
    for i in range(n):
        for j in range(n):
            if (i + j) % 2 == 0:
                x0, y0 = -half + i * cell, -half + j * cell
                pen.polygon(_rect(x0, y0, x0 + cell, y0 + cell))


def _crescent(pen: Pen, rng: np.random.Generator) -> None:
    pen.disc(0, 0, 0.95)
    pen.disc(0.42, 0, 0.78, fill=0)


def _zigzag(pen: Pen, rng: np.random.Generator) -> None:
    xs = np.linspace(-0.68, 0.68, 5)
    pts = [(float(x), 0.36 if k % 2 == 0 else -0.36) for k, x in enumerate(xs)]
    pen.polyline(pts, width=0.3)


def _dots(pen: Pen, rng: np.random.Generator) -> None:
    """Up to six non-touching dots at random places (the only shape that uses ``rng``)."""
    centres: list[Point] = []
    radius, spread, gap = 0.22, 0.72, 0.56
    for _ in range(60):
        if len(centres) == 6:
            break
        rho, phi = spread * math.sqrt(rng.random()), 2 * math.pi * rng.random()
        p = (rho * math.cos(phi), rho * math.sin(phi))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= gap**2 for q in centres):
            centres.append(p)
    for x, y in centres:
        pen.disc(x, y, radius)


def _diamond(pen: Pen, rng: np.random.Generator) -> None:
    pen.polygon([(0, -0.97), (0.56, 0), (0, 0.97), (-0.56, 0)])


def _frame(pen: Pen, rng: np.random.Generator) -> None:
    pen.polygon(_square(0.7))
    pen.polygon(_square(0.4), fill=0)


def _arrow(pen: Pen, rng: np.random.Generator) -> None:
    pen.polygon(
        [(-0.93, -0.2), (0.1, -0.2), (0.1, -0.66), (0.95, 0), (0.1, 0.66), (0.1, 0.2), (-0.93, 0.2)]
    )


SHAPES: dict[str, Callable[[Pen, np.random.Generator], None]] = {
    "wheel": _wheel,
    "wing": _wing,
    "star": _star,
    "stripes": _stripes,
    "cross": _cross,
    "checkerboard": _checkerboard,
    "crescent": _crescent,
    "zigzag": _zigzag,
    "dots": _dots,
    "diamond": _diamond,
    "frame": _frame,
    "arrow": _arrow,
}


def part_coverage(
    name: str, cx: float, cy: float, r: float, angle: float, size: int, rng: np.random.Generator
) -> tuple[int, int, np.ndarray]:
    """Where part ``name`` (centre ``cx, cy``, radius ``r`` px, rotation ``angle``) lands in a
    ``size`` px image: ``(x0, y0, coverage)``, coverage (h, w) in [0, 1] for the pixel box starting
    at ``(x0, y0)``, with coverage below ``ALPHA_THRESHOLD`` set to 0."""
    k = SUPERSAMPLE
    x0 = max(0, math.floor(cx - r) - 1)
    y0 = max(0, math.floor(cy - r) - 1)
    x1 = min(size, math.ceil(cx + r) + 2)
    y1 = min(size, math.ceil(cy + r) + 2)
    w, h = x1 - x0, y1 - y0
    canvas = Image.new("L", (w * k, h * k))
    pen = Pen(ImageDraw.Draw(canvas), (cx - x0) * k, (cy - y0) * k, r * k, angle)
    SHAPES[name](pen, rng)
    cover = np.asarray(canvas, dtype=np.float32).reshape(h, k, w, k).mean(axis=(1, 3)) / 255.0
    cover[cover < ALPHA_THRESHOLD] = 0.0
    return x0, y0, cover
