"""Which parts a parts-world image gets and where they go: the class's defining parts plus
distractors that never complete another class, placed as non-overlapping discs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from netreveal.data.partsworld_vocabulary import PART_TYPES


def choose_parts(
    classes: Mapping[str, Sequence[str]],
    class_name: str,
    max_distractors: int,
    rng: np.random.Generator,
) -> list[tuple[str, bool]]:
    """``(part, is_defining)`` in drawing order: the parts of ``class_name`` and 0..``max_distractors``
    other parts, chosen so that no other class's parts are all present."""
    defining = list(classes[class_name])
    others = [set(p) for name, p in classes.items() if name != class_name]
    present = set(defining)
    n_distract = int(rng.integers(0, max_distractors + 1))
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


def place_parts(
    n: int, size: int, scale: tuple[float, float], rng: np.random.Generator
) -> list[tuple[float, float, float]]:
    """Centres and radii ``(x, y, r)`` in pixels of ``n`` non-overlapping discs inside a ``size`` px
    image, radii a ``scale`` share of the size (shrunk on retries when they do not fit)."""
    s = size
    gap = max(1.5, 0.03 * s)
    for attempt in range(30):
        shrink = 0.93**attempt
        radii = np.sort(rng.uniform(*scale, size=n) * s * shrink)[::-1]
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
