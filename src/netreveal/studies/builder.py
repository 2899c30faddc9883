"""Collecting a new study's images and items, then writing it in batches.

The builder spools every picture (input image, cluster map, six reveal frames per item) as PNG to
a temporary file; only :meth:`StudyBuilder.write` inserts the study, in batches of short
transactions (:mod:`netreveal.store.building`), so SQLite's write lock is held neither for the
model's work nor for the whole insert, and a live game on the same database keeps going. The
study counts as unfinished until its last batch is in; a failure anywhere removes it again.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.store.building import StudyWriter, study_in_batches
from netreveal.store.db import Store
from netreveal.store.json_values import json_safe
from netreveal.store.models import STUDY_KINDS, Study
from netreveal.store.studies import (
    MAX_CLASS,
    MAX_KEY,
    MAX_LAYER,
    NewImage,
    NewItem,
    insert_images,
    insert_items,
    validate_study_name,
)
from netreveal.studies.pictures import encode_pngs, png_bytes
from netreveal.studies.reveal import BACKGROUND, REVEAL_PERCENTS, reveal_frames


class _Spool:
    """PNG bytes parked in a temporary file until the study is written."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="netreveal-study-")  # noqa: SIM115  (closed by close())
        self._end = 0

    def put(self, data: bytes) -> tuple[int, int]:
        self._file.seek(self._end)
        self._file.write(data)
        ref = (self._end, len(data))
        self._end += len(data)
        return ref

    def get(self, ref: tuple[int, int]) -> bytes:
        self._file.seek(ref[0])
        return self._file.read(ref[1])

    def close(self) -> None:
        self._file.close()



@dataclass
class ItemSpec:
    """One explanation item to add: a cluster map of an image at a layer.

    ``image`` is the index returned by :meth:`StudyBuilder.add_image`; ``picture`` (3, H, W) the
    image itself; ``map`` (H, W) the cluster map at the image size, ``low`` (h, w) the same cluster
    map at the layer's resolution (the reveal frames are cut from it).
    """

    image: int
    picture: torch.Tensor
    layer: str
    cluster: int
    weight: float
    channels: list[int]
    map: torch.Tensor
    low: torch.Tensor


@dataclass
class _ImageRecord:
    key: str
    true_class: str | None
    predicted_class: str
    probability: float
    png: tuple[int, int]


@dataclass
class _ItemRecord:
    image: int
    layer: str
    depth: int
    cluster: int
    weight: float
    channels: list[int]
    png: tuple[int, int]
    frames: list[tuple[int, int]] = field(default_factory=list)


class StudyBuilder:
    """Collects a study's images and items, then writes it in batches (one transaction each).

        with StudyBuilder("pets", model=..., classes=[...], layers=[...]) as builder:
            i = builder.add_image("cat-1", picture, "cat", 0.9, true_class="cat")
            builder.add_items([ItemSpec(i, picture, "features.8", 0, 42.0, [3, 7], map, low)])
            study_id = builder.write(store)

    ``layers`` are the study's layer names, shallow to deep (an item's depth is its index there).
    Reveal frames are computed in :meth:`add_items`, batched by ``batch_size`` items.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        classes: Sequence[str],
        layers: Sequence[str],
        params: Mapping[str, Any] | None = None,
        kind: str = "reveal",
        percents: Sequence[float] = REVEAL_PERCENTS,
        background: float = BACKGROUND,
        batch_size: int = 16,
    ):
        self.name = validate_study_name(name)
        if kind not in STUDY_KINDS:
            raise NetrevealError(f"unknown study kind {kind!r}; choose one of {', '.join(STUDY_KINDS)}")
        self.classes = [str(c) for c in classes]
        for c in self.classes:
            _check_length("class name", c, MAX_CLASS)
        self.layers = [str(layer) for layer in layers]
        for layer in self.layers:
            _check_length("layer name", layer, MAX_LAYER)
        if len(set(self.layers)) != len(self.layers):
            raise NetrevealError("a layer is listed twice")
        self.model, self.kind = str(model), kind
        self.params: dict[str, Any] = dict(params or {})
        self.percents, self.background, self.batch_size = tuple(percents), background, int(batch_size)
        self.images: list[_ImageRecord] = []
        self.items: list[_ItemRecord] = []
        self.map_sizes: dict[str, list[int]] = {}
        self._keys: set[str] = set()
        self._spool = _Spool()

    def __enter__(self) -> StudyBuilder:  # noqa: PYI034  (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Drop the spooled pictures."""
        self._spool.close()

    def add_image(
        self,
        key: str,
        picture: torch.Tensor,
        predicted_class: str,
        probability: float,
        true_class: str | None = None,
    ) -> int:
        """Add an input image (3, H, W) in [0, 1]; returns its index for :class:`ItemSpec`.

        A key already used gets a ``-2``, ``-3``... suffix so keys stay unique in the study.
        """
        key = _unique_key(str(key), self._keys)
        _check_length("image key", key, MAX_KEY)
        _check_length("class name", str(predicted_class), MAX_CLASS)
        if true_class is not None:
            _check_length("class name", str(true_class), MAX_CLASS)
        self._keys.add(key)
        png = self._spool.put(png_bytes(picture))
        self.images.append(
            _ImageRecord(key, None if true_class is None else str(true_class), str(predicted_class),
                         float(probability), png)
        )
        return len(self.images) - 1

    def add_items(self, specs: Sequence[ItemSpec]) -> None:
        """Add items with their cluster maps and reveal frames (computed here, batched)."""
        groups: dict[tuple, list[ItemSpec]] = defaultdict(list)
        for spec in specs:
            if spec.layer not in self.layers:
                raise NetrevealError(f"layer {spec.layer!r} is not one of the study's layers")
            if not 0 <= spec.image < len(self.images):
                raise NetrevealError(f"item refers to image {spec.image}, but {len(self.images)} were added")
            groups[(tuple(spec.picture.shape), tuple(spec.low.shape))].append(spec)
        for (_picture_shape, low_shape), group in groups.items():
            for spec in group:
                self.map_sizes.setdefault(spec.layer, list(low_shape))
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                pictures = torch.stack([s.picture.float() for s in chunk])
                lows = torch.stack([s.low.float().to(pictures.device) for s in chunk])
                frames = reveal_frames(pictures, lows, self.percents, background=self.background)
                frame_pngs = encode_pngs(frames.flatten(0, 1))
                map_pngs = encode_pngs(torch.stack([s.map.float() for s in chunk]))
                steps = len(self.percents)
                for n, spec in enumerate(chunk):
                    self.items.append(
                        _ItemRecord(
                            image=spec.image,
                            layer=spec.layer,
                            depth=self.layers.index(spec.layer),
                            cluster=int(spec.cluster),
                            weight=float(spec.weight),
                            channels=[int(c) for c in spec.channels],
                            png=self._spool.put(map_pngs[n]),
                            frames=[self._spool.put(p) for p in frame_pngs[n * steps : (n + 1) * steps]],
                        )
                    )

    def reserve_keys(self, keys: Sequence[str]) -> None:
        """Keys already used in the study (by batches stored earlier): new images get other keys."""
        self._keys.update(keys)

    def flush(self, writer: StudyWriter, params: Mapping[str, Any] | None = None) -> int:
        """Store the images and items added since the last flush in one transaction of ``writer``
        (merging ``params`` into the study's params), then forget them, so memory holds one batch;
        returns how many images were stored."""
        with writer.batch() as session:
            ids = insert_images(session, writer.study_id,
                                [NewImage(r.key, r.true_class, r.predicted_class, r.probability, self._spool.get(r.png))
                                 for r in self.images])
            insert_items(session, writer.study_id, ids,
                         [NewItem(r.image, r.layer, r.depth, r.cluster, r.weight, r.channels, self._spool.get(r.png),
                                  [self._spool.get(f) for f in r.frames]) for r in self.items], self.percents)
            if params:
                study = session.get(Study, writer.study_id)
                study.params = json_safe({**(study.params or {}), **params})
        stored = len(self.images)
        self.images, self.items = [], []
        self._spool.close()
        self._spool = _Spool()
        return stored

    def write(self, store: Store, *, progress: bool = False, chunk: int = 256) -> int:
        """Insert the study, ``chunk`` images or items (with their pictures) per transaction; returns
        its id. Other writers wait at most one batch. The study is unfinished (not served, exported
        or analysed) until the last batch; any error removes it again. An existing name changes
        nothing."""
        if not self.images:
            raise NetrevealError(f"study {self.name!r} has no image")
        params = dict(self.params)
        reveal = dict(params.get("reveal") or {})
        reveal.setdefault("percents", list(self.percents))
        reveal.setdefault("background", self.background)
        reveal.setdefault("map_sizes", self.map_sizes)
        params["reveal"] = reveal
        params.setdefault("counts", {"images": len(self.images), "items": len(self.items)})
        if chunk < 1:
            raise NetrevealError(f"chunk must be at least 1, got {chunk}")
        study = Study(name=self.name, kind=self.kind, model=self.model, classes=self.classes, layers=self.layers,
                      params=json_safe(params))
        with study_in_batches(store, study) as writer:
            image_ids = self._write_images(writer, chunk)
            self._write_items(writer, image_ids, chunk, progress)
            return writer.study_id

    def _write_images(self, writer: StudyWriter, chunk: int) -> list[int]:
        ids: list[int] = []
        for start in range(0, len(self.images), chunk):
            records = self.images[start : start + chunk]
            with writer.batch() as session:
                rows = [NewImage(r.key, r.true_class, r.predicted_class, r.probability, self._spool.get(r.png))
                        for r in records]
                ids.extend(insert_images(session, writer.study_id, rows))
        return ids

    def _write_items(self, writer: StudyWriter, image_ids: list[int], chunk: int, progress: bool) -> None:
        bar = tqdm(total=len(self.items), desc="storing items", unit="item", disable=not progress)
        for start in range(0, len(self.items), chunk):
            records = self.items[start : start + chunk]
            with writer.batch() as session:
                rows = [NewItem(r.image, r.layer, r.depth, r.cluster, r.weight, r.channels, self._spool.get(r.png),
                                [self._spool.get(f) for f in r.frames]) for r in records]
                insert_items(session, writer.study_id, image_ids, rows, self.percents)
            bar.update(len(records))
        bar.close()


def _unique_key(key: str, taken: set[str]) -> str:
    if key not in taken:
        return key
    n = 2
    while f"{key}-{n}" in taken:
        n += 1
    return f"{key}-{n}"


def _check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise NetrevealError(f"{what} {value[:40]!r}... is longer than {limit} characters")


__all__ = ["ItemSpec", "StudyBuilder"]
