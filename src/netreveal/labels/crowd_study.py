"""The simulated crowd labels a stored study whose images are parts-world samples.

Every item of the study (a cluster map, stored as a grey PNG) becomes a
:class:`netreveal.data.crowd.StudyItem` with the ground-truth part masks of its image, rendered
again from the parts world; the simulated players' labels are stored as guesses with
``source="crowd"`` (players ``crowd-00``, ``crowd-01``, ...), in one transaction.

Image keys name the sample: ``<class>-<index>`` (``netreveal demo``: test split),
``<class>-<split>_<index>`` (``netreveal study create`` on a folder written by
:meth:`PartsWorld.write_folder`) or ``<class>/<split>_<index>`` (:func:`netreveal.data.crowd.image_key`).
Each image is rendered again with the parts-world settings of the shipped demo model at the
stored image's size and must match the stored pixels, so labels are never simulated from the
wrong ground truth.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from netreveal.data.crowd import CrowdConfig, StudyItem, simulate_crowd
from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.label_queries import (
    images_with_pictures,
    items_with_maps,
    store_source_labels,
    study_record,
)

CROWD_SOURCE = "crowd"
KEY_PATTERNS = (
    re.compile(r"^(?P<cls>[a-z]+)-(?P<index>\d+)$"),  # netreveal demo (test split)
    re.compile(r"^(?P<cls>[a-z]+)[-/](?P<split>train|val|test)_(?P<index>\d+)(?:\.png)?$"),  # folder / image_key
)
MAX_PIXEL_ERROR = 2.0 / 255.0  # mean absolute difference allowed between stored and rendered image


@dataclass(frozen=True)
class SampleRef:
    """Where a study image comes from in the parts world."""

    class_name: str
    split: str
    index: int


def parse_image_key(key: str) -> SampleRef | None:
    """The parts-world sample an image key names, or None when the key names none."""
    for pattern in KEY_PATTERNS:
        found = pattern.match(key)
        if found:
            split = found.groupdict().get("split") or "test"
            return SampleRef(found["cls"], split, int(found["index"]))
    return None


def _world_settings() -> dict:
    from netreveal.model.demo import load_demo_metadata

    settings = dict(load_demo_metadata().get("parts_world") or {})
    settings.pop("size", None)
    return settings


def _ground_truth(study: str, key: str, picture: torch.Tensor, worlds: dict, settings: dict):
    """(part masks (P, H, W), part names) of the stored image ``picture`` (3, H, W) named ``key``."""
    from netreveal.data.partsworld import PartsWorld

    ref = parse_image_key(key)
    if ref is None:
        raise NetrevealError(
            f"study {study!r}: image {key!r} is not named as a parts-world sample; "
            "the simulated crowd labels only parts-world studies (e.g. from netreveal demo)"
        )
    size = int(picture.shape[-1])
    if picture.dim() != 3 or picture.shape[0] != 3 or int(picture.shape[-2]) != size or not 32 <= size <= 512:
        raise NetrevealError(f"study {study!r}: image {key!r} is not a square RGB parts-world image")
    world = worlds.get(size)
    if world is None:
        world = worlds[size] = PartsWorld(size=size, **settings)
    if ref.class_name not in world.class_names or world.class_names[world.label_of(ref.index)] != ref.class_name:
        raise NetrevealError(f"study {study!r}: image {key!r} is not a parts-world sample (class and index disagree)")
    sample = world.sample(ref.index, ref.split)
    error = float((sample.image.float() - picture.float()).abs().mean())
    if error > MAX_PIXEL_ERROR:
        raise NetrevealError(
            f"study {study!r}: image {key!r} differs from parts-world sample {ref.split}/{ref.index} "
            f"(mean pixel difference {error:.3f}); the simulated crowd needs the parts-world images themselves"
        )
    return sample.masks, list(sample.parts)


def study_crowd_items(store: Store, name: str) -> tuple[list[StudyItem], dict[str, tuple[int, str, list[str]]]]:
    """The study's items as crowd items with their images' ground truth, and per item id
    ``(item id, predicted class, study classes)``. NetrevealError when an image is not a parts-world sample."""
    from netreveal.studies.pictures import png_tensor

    settings = _world_settings()
    worlds: dict = {}
    study = study_record(store, name)
    classes = study.classes
    images = images_with_pictures(store, study.id)
    if not images:
        raise NetrevealError(f"study {name!r} has no image")
    truth: dict[int, tuple[str, str, torch.Tensor, list[str]]] = {}
    for image, png in images:
        masks, parts = _ground_truth(name, image.key, png_tensor(png), worlds, settings)
        truth[image.id] = (image.key, image.predicted_class, masks, parts)
    rows = [(i.id, i.image_id, i.layer, i.cluster, i.weight, png) for i, png in items_with_maps(store, study.id)]
    if not rows:
        raise NetrevealError(f"study {name!r} has no cluster map to label")
    items, info = [], {}
    for item_id, image_id, layer, cluster, weight, png in rows:
        key, predicted, masks, parts = truth[image_id]
        cmap = png_tensor(png)
        if cmap.dim() == 3:
            cmap = cmap.mean(dim=0)
        if tuple(cmap.shape) != tuple(masks.shape[-2:]):
            cmap = torch.nn.functional.interpolate(cmap[None, None], size=tuple(masks.shape[-2:]),
                                                   mode="bilinear", align_corners=False)[0, 0]
        items.append(StudyItem(item_id=str(item_id), image=key, image_class=predicted, layer=layer,
                               cluster=int(cluster), weight=float(weight), map=cmap, part_masks=masks,
                               part_names=parts))
        info[str(item_id)] = (int(item_id), predicted, classes)
    return items, info


def _player_name(player: str) -> str:
    digits = "".join(ch for ch in player if ch.isdigit())
    return f"crowd-{int(digits or 0):02d}"


def _wrong_class(seed: int, item_id: str, k: int, predicted: str, classes: list[str]) -> str | None:
    others = [c for c in classes if c != predicted]
    if not others:
        return None
    rng = np.random.default_rng([int(seed), zlib.crc32(item_id.encode("utf-8")), 1, k])
    return others[int(rng.integers(len(others)))]


def label_study_with_crowd(store: Store, name: str, config: CrowdConfig | None = None, *,
                           replace: bool = False) -> int:
    """Label every item of study ``name`` with the simulated crowd; returns the labels stored.

    A correct guess names the image's predicted class (the class its maps explain); a wrong one a
    random other class of the study. Guesses and the items' ``label_count`` are written in one
    transaction, and the crowd settings are recorded in the study's ``params["crowd"]``. A study
    that already has crowd labels is an error unless ``replace`` (then those labels are deleted
    first, in the same transaction). NetrevealError (nothing stored) when the study is unknown or
    its images are not parts-world samples.
    """
    config = CrowdConfig() if config is None else config
    config.validate()
    items, info = study_crowd_items(store, name)
    records = simulate_crowd(items, config)
    wrong_seen: dict[str, int] = defaultdict(int)
    rows = []
    for r in records:
        item_id, predicted, classes = info[r.item_id]
        if r.correct:
            guessed = predicted
        else:
            guessed = _wrong_class(config.seed, r.item_id, wrong_seen[r.item_id], predicted, classes)
            wrong_seen[r.item_id] += 1
        rows.append({"item_id": item_id, "game_id": None, "player_id": None, "request_id": None,
                     "player_name": _player_name(r.player), "step": int(r.step), "guessed_class": guessed,
                     "text": r.text[:200], "language": r.language, "correct": bool(r.correct),
                     "source": CROWD_SOURCE})
    crowd = {"seed": config.seed, "labels": len(rows), "items": len(items),
             "typo_rate": config.typo_rate, "irrelevant_rate": config.irrelevant_rate,
             "wrong_rate": config.wrong_rate, "filler_rate": config.filler_rate,
             "labels_per_item": list(config.labels_per_item), "n_players": config.n_players,
             "look_fraction": config.look_fraction}
    store_source_labels(store, name, CROWD_SOURCE, rows, replace=replace, params=crowd, params_key="crowd")
    return len(rows)


__all__ = ["CROWD_SOURCE", "SampleRef", "label_study_with_crowd", "parse_image_key", "study_crowd_items"]
