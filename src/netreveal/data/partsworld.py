"""Parts world: a synthetic image classification task with pixel-exact ground truth.

Every class is defined by a combination of two or three named parts (``CLASSES``); the parts are
simple shapes (``PART_TYPES``) drawn at random places, sizes, rotations and colours on random
clutter. Each image also gets 0-2 distractor parts, chosen so that the image's full set of parts
never contains another class's defining set: the class is determined by the combination, and
every part type used by a class also appears in other classes or as a distractor, so no single
part decides the class.

Ground truth per drawn part: its type, whether it is one of the class's defining parts, a boolean
mask of exactly the pixels where it was painted, and its bounding box. A part's coverage is
computed at 4x supersampling; coverage below ``ALPHA_THRESHOLD`` is not painted at all, so the
mask is exactly the set of pixels whose value the part changed (the image is the background
everywhere else, see :meth:`PartsWorld.background`). Parts never overlap.

Determinism: an image depends only on ``(seed, split, index)`` and the generator settings, never
on which images were generated before it. Splits (``"train"``, ``"val"``, ``"test"``) use disjoint
random streams (the split is part of the seed sequence), so they share no image; the class of an
image is ``index % num_classes``. The shipped demo model was trained on ``split="train"`` and
evaluated on ``split="test"`` (the held-out split).

Boxes are ``(x0, y0, x1, y1)`` in pixels with exclusive ends, i.e. ``mask[y0:y1, x0:x1]`` holds the
whole mask.

On disk (:meth:`PartsWorld.write_folder`): ``root/<class>/<split>_<index>.png`` with a compressed
``<split>_<index>.npz`` next to each png (``masks`` (P, H, W) bool, ``parts``, ``defining``,
``boxes``), and ``root/partsworld.json`` with the class and part definitions, the generator settings
and the per-image part metadata. :func:`load_ground_truth` reads the masks back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from netreveal.errors import NetrevealError

SUPERSAMPLE = 4
ALPHA_THRESHOLD = 0.25  # coverage below this is not painted (so masks and pixels agree exactly)
SPLITS = {"train": 0, "val": 1, "test": 2}
FORMAT_NAME = "netreveal-partsworld"
FORMAT_VERSION = 1
META_FILE = "partsworld.json"


@dataclass(frozen=True)
class PartType:
    """A kind of part: its canonical name and the other words people use for it."""

    name: str
    synonyms: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name first, then the synonyms."""
        return (self.name, *self.synonyms)


PART_TYPES: dict[str, PartType] = {
    p.name: p
    for p in (
        PartType("wheel", ("tyre", "tire", "rim", "ring", "hoop")),
        PartType("wing", ("triangle", "fin", "sail", "wedge")),
        PartType("star", ("starfish", "sparkle", "pentagram", "twinkle")),
        PartType("stripes", ("bars", "lines", "bands", "stripe")),
        PartType("cross", ("plus", "plus sign", "crosshair", "intersection")),
        PartType("checkerboard", ("checker", "chessboard", "grid", "tiles")),
        PartType("crescent", ("moon", "crescent moon", "sickle", "banana")),
        PartType("zigzag", ("zig zag", "lightning", "squiggle", "wave")),
        PartType("dots", ("spots", "polka dots", "speckles", "bubbles")),
        PartType("diamond", ("rhombus", "lozenge", "gem")),
        PartType("frame", ("square", "box", "window", "outline")),
        PartType("arrow", ("pointer", "arrowhead", "dart")),
    )
}

CLASSES: dict[str, tuple[str, ...]] = {
    "cart": ("wheel", "stripes"),
    "plane": ("wheel", "wing"),
    "glider": ("wing", "zigzag"),
    "beacon": ("star", "cross"),
    "night": ("crescent", "star"),
    "board": ("checkerboard", "cross"),
    "reef": ("dots", "crescent", "zigzag"),
    "badge": ("diamond", "stripes", "dots"),
}


def class_names(classes: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Class names in label order."""
    return list(CLASSES if classes is None else classes)


def part_names() -> list[str]:
    """Canonical part names in a fixed order."""
    return list(PART_TYPES)


def synonym_lookup() -> dict[str, str]:
    """Every name of every part (lower case) -> the part's canonical name."""
    return {word.lower(): p.name for p in PART_TYPES.values() for word in p.names}


@dataclass
class Sample:
    """One parts-world image with its ground truth.

    ``masks[i]``, ``parts[i]``, ``defining[i]`` and ``boxes[i]`` describe the i-th drawn part;
    boxes are ``(x0, y0, x1, y1)`` with exclusive ends. ``index`` and ``split`` say where the image
    comes from: ``PartsWorld(seed=...).sample(index, split)`` renders it again.
    """

    image: torch.Tensor
    label: int
    class_name: str
    masks: torch.Tensor
    parts: list[str]
    defining: list[bool]
    boxes: list[tuple[int, int, int, int]]
    index: int = -1
    split: str = "train"


# ---------------------------------------------------------------- shapes (unit disc, radius 1)

Point = tuple[float, float]


def _rot(points: Sequence[Point], angle: float) -> list[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _square(half: float, cx: float = 0.0, cy: float = 0.0) -> list[Point]:
    return [
        (cx - half, cy - half),
        (cx + half, cy - half),
        (cx + half, cy + half),
        (cx - half, cy + half),
    ]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class _Pen:
    """Draws unit-disc shapes (radius 1, rotation ``angle``) onto a supersampled 'L' canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float):
        self.draw, self.cx, self.cy, self.r, self.angle = draw, cx, cy, r, angle

    def _map(self, points: Sequence[Point]) -> list[Point]:
        return [(self.cx + x * self.r, self.cy + y * self.r) for x, y in _rot(points, self.angle)]

    def polygon(self, points: Sequence[Point], fill: int = 255) -> None:
        self.draw.polygon(self._map(points), fill=fill)

    def disc(self, x: float, y: float, radius: float, fill: int = 255) -> None:
        (px, py), rr = self._map([(x, y)])[0], radius * self.r
        self.draw.ellipse((px - rr, py - rr, px + rr, py + rr), fill=fill)

    def polyline(self, points: Sequence[Point], width: float) -> None:
        w = max(1, round(width * self.r))
        self.draw.line(self._map(points), fill=255, width=w, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps
            self.disc(x, y, width / 2)


def _wheel(pen: _Pen, rng: np.random.Generator) -> None:
    pen.disc(0, 0, 0.95)
    pen.disc(0, 0, 0.62, fill=0)
    pen.disc(0, 0, 0.27)


def _wing(pen: _Pen, rng: np.random.Generator) -> None:
    pen.polygon([(-0.75, -0.7), (0.85, 0.55), (-0.75, 0.55)])


def _star(pen: _Pen, rng: np.random.Generator) -> None:
    pts = []
    for k in range(10):
        rad = 0.98 if k % 2 == 0 else 0.42
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((rad * math.cos(a), rad * math.sin(a)))
    pen.polygon(pts)


def _stripes(pen: _Pen, rng: np.random.Generator) -> None:
    for x0 in (-0.7, -0.14, 0.42):
        pen.polygon(_rect(x0, -0.7, x0 + 0.28, 0.7))


def _cross(pen: _Pen, rng: np.random.Generator) -> None:
    pen.polygon(_rect(-0.93, -0.24, 0.93, 0.24))
    pen.polygon(_rect(-0.24, -0.93, 0.24, 0.93))


def _checkerboard(pen: _Pen, rng: np.random.Generator) -> None:
    n, half = 4, 0.7
    cell = 2 * half / n
    for i in range(n):
        for j in range(n):
            if (i + j) % 2 == 0:
                x0, y0 = -half + i * cell, -half + j * cell
                pen.polygon(_rect(x0, y0, x0 + cell, y0 + cell))


def _crescent(pen: _Pen, rng: np.random.Generator) -> None:
    pen.disc(0, 0, 0.95)
    pen.disc(0.42, 0, 0.78, fill=0)


def _zigzag(pen: _Pen, rng: np.random.Generator) -> None:
    xs = np.linspace(-0.68, 0.68, 5)
    pts = [(float(x), 0.36 if k % 2 == 0 else -0.36) for k, x in enumerate(xs)]
    pen.polyline(pts, width=0.3)


def _dots(pen: _Pen, rng: np.random.Generator) -> None:
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


def _diamond(pen: _Pen, rng: np.random.Generator) -> None:
    pen.polygon([(0, -0.97), (0.56, 0), (0, 0.97), (-0.56, 0)])


def _frame(pen: _Pen, rng: np.random.Generator) -> None:
    pen.polygon(_square(0.7))
    pen.polygon(_square(0.4), fill=0)


def _arrow(pen: _Pen, rng: np.random.Generator) -> None:
    pen.polygon(
        [(-0.93, -0.2), (0.1, -0.2), (0.1, -0.66), (0.95, 0), (0.1, 0.66), (0.1, 0.2), (-0.93, 0.2)]
    )


SHAPES: dict[str, Callable[[_Pen, np.random.Generator], None]] = {
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


# ---------------------------------------------------------------- colours and background


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


def _interp_matrix(size: int, grid: int) -> np.ndarray:
    """(size, grid) bilinear interpolation weights from a coarse grid to ``size`` pixels."""
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * (grid - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, grid - 2)
    frac = pos - lo
    m = np.zeros((size, grid), dtype=np.float32)
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def _check_classes(classes: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    out = {str(k): tuple(v) for k, v in classes.items()}
    if len(out) < 2:
        raise NetrevealError("parts world needs at least two classes")
    for name, parts in out.items():
        unknown = [p for p in parts if p not in PART_TYPES]
        if unknown:
            raise NetrevealError(
                f"class {name!r} uses unknown part(s) {unknown}; known: {', '.join(PART_TYPES)}"
            )
        if not 1 <= len(set(parts)) == len(parts):
            raise NetrevealError(f"class {name!r} must have distinct parts")
    for a, pa in out.items():
        for b, pb in out.items():
            if a != b and set(pa) <= set(pb):
                raise NetrevealError(
                    f"class {a!r} parts {pa} are contained in class {b!r} parts {pb}"
                )
    return out


# ---------------------------------------------------------------- the generator


class PartsWorld(Dataset):
    """Seeded parts-world generator; also a map-style ``Dataset`` of ``(image, label)`` pairs.

    ``sample(index)`` renders image ``index`` of ``split`` with all its ground truth; ``len()`` is
    ``length`` (the dataset view only; any non-negative index can be sampled).
    """

    def __init__(
        self,
        size: int = 64,
        seed: int = 0,
        split: str = "train",
        length: int = 10_000,
        max_distractors: int = 2,
        classes: Mapping[str, Sequence[str]] | None = None,
        scale: tuple[float, float] = (0.115, 0.165),
        clutter: float = 1.0,
    ):
        if not 32 <= size <= 512:
            raise NetrevealError(f"parts world image size must be in 32..512, got {size}")
        if split not in SPLITS:
            raise NetrevealError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if max_distractors < 0:
            raise NetrevealError("max_distractors must be >= 0")
        if not 0 < scale[0] <= scale[1] < 0.3:
            raise NetrevealError(f"part scale must satisfy 0 < min <= max < 0.3, got {scale}")
        self.size = int(size)
        self.seed = int(seed)
        self.split = split
        self.length = int(length)
        self.max_distractors = int(max_distractors)
        self.classes = _check_classes(CLASSES if classes is None else classes)
        self.class_names = list(self.classes)
        self.scale = (float(scale[0]), float(scale[1]))
        self.clutter = float(clutter)
        self._interp = {g: _interp_matrix(self.size, g) for g in (3, 6)}

    # -- dataset view
    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        image, label, _ = self._render(i, self.split)
        return torch.from_numpy(image), label

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def settings(self) -> dict:
        """The generator settings that, with (split, index), determine an image."""
        return {
            "size": self.size,
            "seed": self.seed,
            "max_distractors": self.max_distractors,
            "scale": list(self.scale),
            "clutter": self.clutter,
            "classes": {k: list(v) for k, v in self.classes.items()},
        }

    # -- public rendering
    def sample(self, index: int, split: str | None = None) -> Sample:
        """Image ``index`` of ``split`` (default: this generator's split) with its ground truth."""
        split = self.split if split is None else split
        if split not in SPLITS:
            raise NetrevealError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        image, label, parts = self._render(int(index), split)
        h = w = self.size
        masks = np.zeros((len(parts), h, w), dtype=bool)
        boxes = []
        for k, part in enumerate(parts):
            x0, y0, alpha = part["x0"], part["y0"], part["alpha"]
            local = alpha > 0
            masks[k, y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]] = local
            ys, xs = np.nonzero(local)
            boxes.append(
                (
                    int(x0 + xs.min()),
                    int(y0 + ys.min()),
                    int(x0 + xs.max() + 1),
                    int(y0 + ys.max() + 1),
                )
            )
        return Sample(
            image=torch.from_numpy(image),
            label=label,
            class_name=self.class_names[label],
            masks=torch.from_numpy(masks),
            parts=[p["name"] for p in parts],
            defining=[p["defining"] for p in parts],
            boxes=boxes,
            index=int(index),
            split=split,
        )

    def batch(
        self, indices: Sequence[int], split: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
        """Images (B, 3, H, W), labels (B,) and the full samples for ``indices``."""
        samples = [self.sample(i, split) for i in indices]
        images = (
            torch.stack([s.image for s in samples])
            if samples
            else torch.zeros(0, 3, self.size, self.size)
        )
        labels = torch.tensor([s.label for s in samples], dtype=torch.long)
        return images, labels, samples

    def background(self, index: int, split: str | None = None) -> torch.Tensor:
        """The clutter image ``index`` is drawn on: equal to the image outside its part masks."""
        split = self.split if split is None else split
        bg = self._background(self._rng(index, split, 0))
        return torch.from_numpy(self._quantise(bg).transpose(2, 0, 1).copy())

    def label_of(self, index: int) -> int:
        """The class label of image ``index`` (any split)."""
        return int(index) % self.num_classes

    # -- internals
    def _rng(self, index: int, split: str, stream: int) -> np.random.Generator:
        if index < 0:
            raise NetrevealError(f"parts world index must be >= 0, got {index}")
        return np.random.default_rng([self.seed, SPLITS[split], int(index), stream])

    @staticmethod
    def _quantise(image: np.ndarray) -> np.ndarray:
        return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        s = self.size
        base = _hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.9))
        img = np.broadcast_to(base, (s, s, 3)).astype(np.float32)
        for grid, amp in ((3, 0.22), (6, 0.1)):
            m = self._interp[grid]
            coarse = rng.uniform(-1, 1, size=(3, grid, grid)).astype(np.float32)
            coarse = 0.6 * coarse + 0.4 * coarse.mean(axis=0, keepdims=True)  # partly luminance
            smooth = np.matmul(np.matmul(m, coarse), m.T)  # (3, s, s) bilinear upsampling
            img = img + (amp * self.clutter) * smooth.transpose(1, 2, 0)
        n_strokes = int(rng.integers(3, 9)) if self.clutter > 0 else 0
        if n_strokes:
            colour = Image.new("RGB", (s, s))
            alpha = Image.new("L", (s, s))
            dc, da = ImageDraw.Draw(colour), ImageDraw.Draw(alpha)
            for _ in range(n_strokes):
                c = tuple(int(v) for v in rng.integers(0, 256, size=3))
                a = int(255 * min(1.0, rng.uniform(0.12, 0.35) * self.clutter))
                width = int(rng.integers(1, 3)) * max(1, s // 64)
                if rng.random() < 0.5:
                    pts = [
                        tuple(p)
                        for p in rng.uniform(-0.1 * s, 1.1 * s, size=(int(rng.integers(2, 4)), 2))
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
            img = img * (1 - a) + (np.asarray(colour, dtype=np.float32) / 255.0) * a
        img = img + rng.normal(0.0, 0.012 * self.clutter, size=img.shape).astype(np.float32)
        return np.clip(img, 0.0, 1.0)

    def _choose_parts(self, label: int, rng: np.random.Generator) -> list[tuple[str, bool]]:
        defining = list(self.classes[self.class_names[label]])
        others = [set(p) for name, p in self.classes.items() if name != self.class_names[label]]
        present = set(defining)
        n_distract = int(rng.integers(0, self.max_distractors + 1))
        distractors: list[str] = []
        candidates = [p for p in PART_TYPES if p not in present]
        for _ in range(n_distract):
            allowed = [p for p in candidates if not any(o <= present | {p} for o in others)]
            if not allowed:
                break
            pick = allowed[int(rng.integers(len(allowed)))]
            distractors.append(pick)
            present.add(pick)
            candidates.remove(pick)
        chosen = [(p, True) for p in defining] + [(p, False) for p in distractors]
        order = rng.permutation(len(chosen))
        return [chosen[i] for i in order]

    def _layout(self, n: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
        """Centres and radii (pixels) of ``n`` non-overlapping discs inside the image."""
        s = self.size
        gap = max(1.5, 0.03 * s)
        for attempt in range(30):
            shrink = 0.93**attempt
            radii = np.sort(rng.uniform(*self.scale, size=n) * s * shrink)[::-1]
            placed: list[tuple[float, float, float]] = []
            for r in radii:
                margin = r + 1.0
                cand = rng.uniform(margin, s - margin, size=(48, 2))
                ok = np.ones(len(cand), dtype=bool)
                for px, py, pr in placed:
                    ok &= (cand[:, 0] - px) ** 2 + (cand[:, 1] - py) ** 2 >= (r + pr + gap) ** 2
                hits = np.flatnonzero(ok)
                if len(hits) == 0:
                    break
                x, y = cand[hits[0]]
                placed.append((float(x), float(y), float(r)))
            if len(placed) == n:
                order = rng.permutation(n)
                return [placed[i] for i in order]
        raise RuntimeError("parts world layout failed")  # unreachable for the allowed scales

    def _draw_part(
        self, name: str, cx: float, cy: float, r: float, angle: float, rng: np.random.Generator
    ) -> tuple[int, int, np.ndarray]:
        """Coverage (h, w) of one part in its pixel box, with coverage below the threshold removed."""
        k = SUPERSAMPLE
        x0 = max(0, math.floor(cx - r) - 1)
        y0 = max(0, math.floor(cy - r) - 1)
        x1 = min(self.size, math.ceil(cx + r) + 2)
        y1 = min(self.size, math.ceil(cy + r) + 2)
        w, h = x1 - x0, y1 - y0
        canvas = Image.new("L", (w * k, h * k))
        pen = _Pen(ImageDraw.Draw(canvas), (cx - x0) * k, (cy - y0) * k, r * k, angle)
        SHAPES[name](pen, rng)
        cover = np.asarray(canvas, dtype=np.float32).reshape(h, k, w, k).mean(axis=(1, 3)) / 255.0
        cover[cover < ALPHA_THRESHOLD] = 0.0
        return x0, y0, cover

    def _render(self, index: int, split: str) -> tuple[np.ndarray, int, list[dict]]:
        label = self.label_of(index)
        img = self._background(self._rng(index, split, 0))
        rng = self._rng(index, split, 1)
        chosen = self._choose_parts(label, rng)
        layout = self._layout(len(chosen), rng)
        parts = []
        for (name, is_defining), (cx, cy, r) in zip(chosen, layout):
            angle = float(rng.uniform(0, 2 * math.pi))
            x0, y0, alpha = self._draw_part(name, cx, cy, r, angle, rng)
            h, w = alpha.shape
            region = img[y0 : y0 + h, x0 : x0 + w]
            colour = self._part_colour(region, rng)
            # a gentle linear shading across the part
            direction = rng.uniform(-1, 1, size=2).astype(np.float32)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ramp = ((xx - w / 2) * direction[0] + (yy - h / 2) * direction[1]) / max(r, 1.0)
            shade = np.clip(colour[None, None, :] * (1 + 0.12 * ramp[..., None]), 0.0, 1.0)
            a = alpha[..., None]
            img[y0 : y0 + h, x0 : x0 + w] = region * (1 - a) + shade * a
            parts.append(
                {"name": name, "defining": is_defining, "x0": x0, "y0": y0, "alpha": alpha}
            )
        image = self._quantise(img).transpose(2, 0, 1).copy()
        return image, label, parts

    @staticmethod
    def _part_colour(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random colour that stands out from the local background."""
        local = region.reshape(-1, 3).mean(axis=0)
        best, best_d = None, -1.0
        for _ in range(12):
            c = _hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0))
            d = float(np.abs(c - local).sum())
            if d >= 0.6:
                return c
            if d > best_d:
                best, best_d = c, d
        return best

    # -- writing to disk
    def write_folder(
        self,
        root: str | os.PathLike,
        n_per_class: int,
        split: str = "test",
        start_index: int = 0,
        progress: bool = False,
    ) -> Path:
        """Write ``n_per_class`` images of each class of ``split`` as an image folder with masks.

        Uses indices ``start_index .. start_index + n_per_class * num_classes - 1``. Layout:
        ``root/<class>/<split>_<index:07d>.png`` + ``.npz`` masks next to it, and
        ``root/partsworld.json`` (merged with an existing one written with the same settings).
        """
        from tqdm.auto import tqdm

        if split not in SPLITS:
            raise NetrevealError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if n_per_class < 1 or start_index < 0:
            raise NetrevealError("write_folder needs n_per_class >= 1 and start_index >= 0")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        meta_path = root / META_FILE
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "settings": self.settings(),
            "class_names": self.class_names,
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
        indices = range(start_index, start_index + n_per_class * self.num_classes)
        for index in tqdm(indices, desc=f"parts world {split}", disable=not progress):
            s = self.sample(index, split)
            folder = root / s.class_name
            folder.mkdir(exist_ok=True)
            stem = f"{split}_{index:07d}"
            pixels = (s.image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{stem}.png")
            np.savez_compressed(
                folder / f"{stem}.npz",
                masks=s.masks.numpy(),
                parts=np.array(s.parts, dtype=str),
                defining=np.array(s.defining, dtype=bool),
                boxes=np.array(s.boxes, dtype=np.int64).reshape(-1, 4),
            )
            meta["images"][f"{s.class_name}/{stem}.png"] = {
                "split": split,
                "index": index,
                "label": s.label,
                "class_name": s.class_name,
                "parts": s.parts,
                "defining": s.defining,
                "boxes": [list(b) for b in s.boxes],
            }
        meta_path.write_text(json.dumps(meta, indent=1))
        return root


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
