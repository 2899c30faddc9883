"""A synthetic evaluation study for tests: no model, one solid colour per method's explanation, so a
test can tell from a served picture which method it shows (as a person tells explanations apart)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from netreveal.store.evaluation import EvalImage, write_evaluation_study
from netreveal.userstudy import make_design

CLASSES = ["cat", "dog", "fox", "owl", "bee", "elk"]
METHODS = ["good", "poor", "twin1", "twin2"]
SEED = 11


def solid_png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def method_colour(index: int) -> tuple[int, int, int]:
    """A distinct colour per method index (image colours are grey, never one of these)."""
    return (40 + 50 * index, 200 - 40 * index, 90 + 30 * (index % 3))


def image_colour(index: int) -> tuple[int, int, int]:
    grey = 10 + 7 * index
    return (grey, grey, grey)


def method_of(png: bytes, methods: Sequence[str] = METHODS) -> str:
    """The method whose colour the explanation picture ``png`` has."""
    with Image.open(io.BytesIO(png)) as image:
        colour = image.convert("RGB").getpixel((0, 0))
    for i, m in enumerate(methods):
        if tuple(colour) == method_colour(i):
            return m
    raise AssertionError(f"colour {colour} is no method's")


def make_eval_study(store, name: str = "ev", *, methods: Sequence[str] = METHODS, n_images: int = 8,
                    n_forward: int = 4, seed: int = SEED, attention_every: int = 4) -> dict:
    """Store an evaluation study of ``n_images`` synthetic images; image i is predicted as
    ``CLASSES[i % 6]``. Returns {"id", "design", "seed", "methods", "keys", "predicted"}."""
    keys = [f"{CLASSES[i % len(CLASSES)]}-{i:03d}" for i in range(n_images)]
    predicted = {k: CLASSES[i % len(CLASSES)] for i, k in enumerate(keys)}
    ranked = {k: [predicted[k], CLASSES[(i + 1) % len(CLASSES)]] for i, k in enumerate(keys)}
    design = make_design(keys, list(methods), ranked, CLASSES, seed=seed, n_forward=n_forward,
                         attention_every=attention_every)
    images = [EvalImage(key=k, png=solid_png(image_colour(i)), predicted_class=predicted[k], probability=0.8,
                        true_class=predicted[k],
                        explanations={m: solid_png(method_colour(j)) for j, m in enumerate(methods)})
              for i, k in enumerate(keys)]
    study_id = write_evaluation_study(store, name, model='{"model": "synthetic"}', classes=CLASSES, methods=methods,
                                      design=design, seed=seed, images=images)
    return {"id": study_id, "design": design, "seed": seed, "methods": list(methods), "keys": keys,
            "predicted": predicted}
