"""A simulated crowd for the parts world: players who name what a revealed cluster map shows.

Each study item is one INV cluster map of one image and layer, with the image's ground-truth part
masks. A simulated player looks at the map's strongest region, finds the part it overlaps most and
types one of that part's names (a random synonym), sometimes with filler words, the class name, a
typo or an irrelevant word; some players guess the wrong class and then name a part they did not
see. The reveal step is the first of the game's six steps at which enough of the part is visible
for that player. Everything is seeded per item, so a label set does not depend on item order.

:func:`partsworld_items` builds the items from held-out parts-world images with INV and the demo
model, so the whole label pipeline runs without people.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from netreveal.data.partsworld import CLASSES, PART_TYPES, PartsWorld, Sample
from netreveal.errors import NetrevealError
from netreveal.labels.records import LabelRecord

if TYPE_CHECKING:
    from netreveal.inv import InvResult

REVEAL_FRACTIONS = (0.02, 0.045, 0.08, 0.13, 0.20, 0.30)  # the game's six reveal steps
BACKGROUND_WORDS = ("background", "clutter", "texture", "noise", "smudge", "scribble", "blur")
IRRELEVANT_WORDS = (
    "blue", "red", "green", "shiny", "dark", "bright", "small", "big", "dog", "tree", "cloud",
    "grass", "car", "house", "sky", "water", "metal", "paper", "fuzzy", "nice",
)  # fmt: skip
TEMPLATES = ("{w}", "{w}", "{w}", "a {w}", "the {w}", "looks like a {w}", "{c} {w}", "{w}?")
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass
class StudyItem:
    """One cluster map to be labelled, with the ground truth of its image.

    ``map`` (H, W) in [0, 1]; ``part_masks`` (P, H, W) bool at the same size; ``part_names[i]``
    the canonical name of part i.
    """

    item_id: str
    image: str
    image_class: str
    layer: str
    cluster: int
    weight: float
    map: torch.Tensor
    part_masks: torch.Tensor
    part_names: list[str]


@dataclass(frozen=True)
class CrowdConfig:
    """How the simulated crowd behaves.

    - ``labels_per_item``: inclusive range of labels each item receives (one per player).
    - ``typo_rate``: share of labels with one typo (a swap, drop, doubling or neighbouring key).
    - ``irrelevant_rate``: share of labels with an unrelated word; a third of those are only
      that word.
    - ``wrong_rate``: share of wrong class guesses (``correct=False``); such a player names a
      part other than the one revealed.
    - ``look_fraction``: the top share of the map whose overlap with each part decides which part
      a player sees (nothing when it overlaps no part: then a background word).
    - ``filler_rate``: share of labels written in a template such as "looks like a {part}" or
      "{class} {part}" (exercises label cleaning).
    """

    labels_per_item: tuple[int, int] = (5, 8)
    typo_rate: float = 0.0
    irrelevant_rate: float = 0.0
    wrong_rate: float = 0.0
    look_fraction: float = 0.05
    filler_rate: float = 0.3
    n_players: int = 40
    seed: int = 0

    def validate(self) -> None:
        """Raise ``NetrevealError`` if a setting is out of range."""
        lo, hi = self.labels_per_item
        if not 1 <= lo <= hi:
            raise NetrevealError(f"labels_per_item must satisfy 1 <= lo <= hi, got {self.labels_per_item}")
        for name in ("typo_rate", "irrelevant_rate", "wrong_rate", "filler_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise NetrevealError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 < self.look_fraction <= 1.0:
            raise NetrevealError(f"look_fraction must be in (0, 1], got {self.look_fraction}")
        if self.n_players < 1:
            raise NetrevealError("n_players must be at least 1")

    @classmethod
    def noisy(cls, noise: float, **kwargs) -> CrowdConfig:
        """Typos, irrelevant words and wrong guesses all at rate ``noise``."""
        return cls(typo_rate=noise, irrelevant_rate=noise, wrong_rate=noise, **kwargs)


def _top_region(m: torch.Tensor, fraction: float) -> torch.Tensor:
    flat = m.flatten().float()
    k = max(1, int(np.ceil(fraction * flat.numel())))
    region = torch.zeros_like(flat, dtype=torch.bool)
    region[flat.topk(k).indices] = True
    return region.view(m.shape)


def seen_part(item: StudyItem, fraction: float = 0.05) -> int:
    """Index of the part the map's top ``fraction`` overlaps most (-1: no part at all)."""
    if item.part_masks.shape[0] == 0:
        return -1
    if tuple(item.part_masks.shape[-2:]) != tuple(item.map.shape):
        raise NetrevealError(f"item {item.item_id}: map and part masks differ in size")
    region = _top_region(item.map, fraction)
    overlap = (item.part_masks & region).flatten(1).sum(1)
    best = int(overlap.argmax())
    return best if int(overlap[best]) > 0 else -1


def _visible_share(item: StudyItem, part: int) -> list[float]:
    """Share of the part's pixels revealed at each reveal step."""
    mask = item.part_masks[part]
    area = max(1, int(mask.sum()))
    return [int((mask & _top_region(item.map, f)).sum()) / area for f in REVEAL_FRACTIONS]


def _typo(word: str, rng: np.random.Generator) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word + word[-1]
    i = letters[int(rng.integers(1, len(letters)))]  # keep the first letter, as people do
    kind = int(rng.integers(4))
    if kind == 0 and i + 1 < len(word) and word[i + 1].isalpha() and word[i + 1] != word[i]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    for row in KEYBOARD_ROWS:
        j = row.find(word[i])
        if j >= 0:
            near = [row[k] for k in (j - 1, j + 1) if 0 <= k < len(row)]
            return word[:i] + near[int(rng.integers(len(near)))] + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def _item_rng(seed: int, item_id: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(item_id.encode("utf-8"))])


def _label_text(
    part: str | None, item: StudyItem, cfg: CrowdConfig, rng: np.random.Generator
) -> str:
    if part is None:
        words = BACKGROUND_WORDS[int(rng.integers(len(BACKGROUND_WORDS)))]
    else:
        names = PART_TYPES[part].names
        words = names[int(rng.integers(len(names)))]
    if rng.random() < cfg.irrelevant_rate:
        extra = IRRELEVANT_WORDS[int(rng.integers(len(IRRELEVANT_WORDS)))]
        roll = rng.random()
        words = extra if roll < 1 / 3 else (f"{extra} {words}" if roll < 2 / 3 else f"{words} {extra}")
    if rng.random() < cfg.typo_rate:
        tokens = words.split()
        k = int(rng.integers(len(tokens)))
        tokens[k] = _typo(tokens[k], rng)
        words = " ".join(tokens)
    template = "{w}"
    if rng.random() < cfg.filler_rate:
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    text = template.format(w=words, c=item.image_class)
    return text.capitalize() if rng.random() < 0.2 else text


def _reveal_step(shares: list[float], rng: np.random.Generator) -> int:
    need = rng.uniform(0.15, 0.6)  # how much of the part this player needs to see
    step = next((s for s, v in enumerate(shares, start=1) if v >= need), len(shares))
    if rng.random() < 0.25:  # a cautious player asks for one more step
        step += 1
    return int(min(step, len(shares)))


def label_item(item: StudyItem, config: CrowdConfig = CrowdConfig()) -> list[LabelRecord]:
    """The simulated labels of one item (seeded by ``config.seed`` and the item id)."""
    config.validate()
    rng = _item_rng(config.seed, item.item_id)
    part_idx = seen_part(item, config.look_fraction)
    truth = item.part_names[part_idx] if part_idx >= 0 else None
    shares = _visible_share(item, part_idx) if part_idx >= 0 else None
    lo, hi = config.labels_per_item
    n = int(rng.integers(lo, hi + 1))
    players = rng.choice(config.n_players, size=min(n, config.n_players), replace=False)
    out = []
    for k in range(n):
        wrong = bool(rng.random() < config.wrong_rate)
        named = truth
        if wrong:
            others = [p for p in PART_TYPES if p != truth]
            named = others[int(rng.integers(len(others)))]
        if shares is None:
            step = int(rng.integers(3, len(REVEAL_FRACTIONS) + 1))
        else:
            step = _reveal_step(shares, rng)
        out.append(
            LabelRecord(
                item_id=item.item_id,
                image=item.image,
                image_class=item.image_class,
                layer=item.layer,
                cluster=item.cluster,
                weight=item.weight,
                text=_label_text(named, item, config, rng),
                step=step,
                correct=not wrong,
                player=f"player{int(players[k % len(players)]):03d}",
            )
        )
    return out


def simulate_crowd(items: Sequence[StudyItem], config: CrowdConfig = CrowdConfig()) -> list[LabelRecord]:
    """Labels for every item, in item order."""
    config.validate()
    return [record for item in items for record in label_item(item, config)]


# ---------------------------------------------------------------- items from the parts world


def image_key(sample: Sample) -> str:
    """A stable name for a parts-world image: ``<class>/<split>_<index:07d>``."""
    return f"{sample.class_name}/{sample.split}_{sample.index:07d}"


def items_from_inv(result: InvResult, samples: Sequence[Sample]) -> list[StudyItem]:
    """One item per INV cluster map (every image, layer and kept cluster) of ``result``, whose
    images are ``samples`` in order."""
    if len(result.images) != len(samples):
        raise NetrevealError(f"INV result has {len(result.images)} images, got {len(samples)} samples")
    items = []
    for inv_image, sample in zip(result.images, samples):
        key = image_key(sample)
        for layer in inv_image.layers:
            for c, cluster in enumerate(layer.clusters):
                items.append(
                    StudyItem(
                        item_id=f"{key}|{layer.name}|{c}",
                        image=key,
                        image_class=sample.class_name,
                        layer=layer.name,
                        cluster=c,
                        weight=float(cluster.weight),
                        map=cluster.map.float(),
                        part_masks=sample.masks,
                        part_names=list(sample.parts),
                    )
                )
    return items


def partsworld_items(
    n_images: int = 80,
    layers: str | list = "auto:9",
    model: torch.nn.Module | None = None,
    split: str = "test",
    start: int = 0,
    seed: int = 0,
    size: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[list[StudyItem], InvResult, list[Sample]]:
    """Study items from ``n_images`` parts-world images of ``split`` (classes in turn, indices
    ``start..``, ``size`` px, default the demo model's input size): INV (explained class = the
    true class) with the demo model unless ``model`` is given. Returns
    ``(items, inv_result, samples)``."""
    from netreveal.inv import explain_inv
    from netreveal.model.demo import load_demo_metadata, load_demo_model

    if n_images < 1:
        raise NetrevealError("need at least one image")
    if model is None:
        model, _ = load_demo_model()
    if size is None:
        size = int(load_demo_metadata()["input_size"])
    world = PartsWorld(size=size, seed=seed, split=split, classes=CLASSES)
    images, labels, samples = world.batch(range(start, start + n_images))
    result = explain_inv(model, images, layers, target=labels, batch_size=batch_size, seed=seed,
                         progress=progress)
    return items_from_inv(result, samples), result, samples
