"""The parts world's colours: the cluttered background an image is drawn on and part colours that
stand out from it. Every random draw comes from the generator passed in, in a fixed order."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """An HSV colour (each in [0, 1]) as float32 RGB in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


@lru_cache(maxsize=16)
def interpolation_matrix(size: int, grid: int) -> np.ndarray:
    """(size, grid) bilinear interpolation weights from a coarse grid to ``size`` pixels
    (cached, so read-only)."""
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * (grid - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, grid - 2)
    frac = pos - lo
    m = np.zeros((size, grid), dtype=np.float32)
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    m.setflags(write=False)
    return m


def quantise(image: np.ndarray) -> np.ndarray:
    """Float image clipped to [0, 1] and rounded to 8-bit levels (what a png keeps)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def clutter_background(rng: np.random.Generator, size: int, clutter: float) -> np.ndarray:
    """A (size, size, 3) float image in [0, 1]: a random base colour with smooth colour noise,
    semi-transparent strokes and arcs, and pixel noise, all scaled by ``clutter`` (0: plain)."""
    s = size
    base = hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.9))
    img = np.broadcast_to(base, (s, s, 3)).astype(np.float32)
    for grid, amp in ((3, 0.22), (6, 0.1)):
        m = interpolation_matrix(s, grid)
        coarse = rng.uniform(-1, 1, size=(3, grid, grid)).astype(np.float32)
        coarse = 0.6 * coarse + 0.4 * coarse.mean(axis=0, keepdims=True)  # partly luminance
        smooth = np.matmul(np.matmul(m, coarse), m.T)  # (3, s, s) bilinear upsampling
        img = img + (amp * clutter) * smooth.transpose(1, 2, 0)
    n_strokes = int(rng.integers(3, 9)) if clutter > 0 else 0
    if n_strokes:
        img = _draw_strokes(img, n_strokes, rng, clutter)
    img = img + rng.normal(0.0, 0.012 * clutter, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def _draw_strokes(
    img: np.ndarray, n_strokes: int, rng: np.random.Generator, clutter: float
) -> np.ndarray:
    """``img`` with ``n_strokes`` random lines and arcs blended over it."""
    s = img.shape[0]
    colour = Image.new("RGB", (s, s))
    alpha = Image.new("L", (s, s))
    dc, da = ImageDraw.Draw(colour), ImageDraw.Draw(alpha)
    for _ in range(n_strokes):
        c = tuple(int(v) for v in rng.integers(0, 256, size=3))
        a = int(255 * min(1.0, rng.uniform(0.12, 0.35) * clutter))
        width = int(rng.integers(1, 3)) * max(1, s // 64)
        if rng.random() < 0.5:
            pts = [
                tuple(p) for p in rng.uniform(-0.1 * s, 1.1 * s, size=(int(rng.integers(2, 4)), 2))
            ]
            dc.line(pts, fill=c, width=width)
            da.line(pts, fill=a, width=width)
        else:
            cx, cy = rng.uniform(0, s, size=2)
            rr = rng.uniform(0.1, 0.5) * s
            start = float(rng.uniform(0, 360))
            box = (cx - rr, cy - rr, cx + rr, cy + rr)
            end = start + float(rng.uniform(40, 200))
            dc.arc(box, start, end, fill=c, width=width)
            da.arc(box, start, end, fill=a, width=width)
    a = np.asarray(alpha, dtype=np.float32)[..., None] / 255.0
    return img * (1 - a) + (np.asarray(colour, dtype=np.float32) / 255.0) * a


def contrasting_colour(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour that stands out from the mean colour of ``region`` (h, w, 3)."""
    local = region.reshape(-1, 3).mean(axis=0)
    best, best_d = None, -1.0
    for _ in range(12):
        c = hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0))
        d = float(np.abs(c - local).sum())
        if d >= 0.6:
            return c
        if d > best_d:
            best, best_d = c, d
    return best
