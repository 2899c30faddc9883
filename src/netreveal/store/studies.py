"""Studies in the store: create one from an image folder (INV + reveal frames), export it, import
labels into it, read its labels back, and cache label embeddings in the database.

Creating a study runs INV chunk by chunk and spools every picture (input image, cluster map, six
reveal frames per item) as PNG to a temporary file; only then is the study inserted, in batches of
short transactions (:mod:`netreveal.store.building`), so SQLite's write lock is held neither for
the model's work nor for the whole insert, and a live game on the same database keeps going. The
study counts as unfinished until its last batch is in; a failure anywhere removes it again.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from netreveal.csvtable import write_table
from netreveal.errors import NetrevealError
from netreveal.fileio import STUDY_EXPORT, staged_folder
from netreveal.labels.records import LabelRecord
from netreveal.store.building import StudyWriter, check_ready, name_in_use, study_in_batches
from netreveal.store.db import Store
from netreveal.store.models import (
    Account,
    Concept,
    ConceptEvent,
    ConceptMember,
    Embedding,
    Game,
    Guess,
    Item,
    Media,
    RevealFrame,
    Study,
    StudyImage,
)
from netreveal.store.reveal import BACKGROUND, REVEAL_PERCENTS, reveal_frames, reveal_sigma

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
EXPORT_FORMAT = "netreveal-study-export"
EXPORT_VERSION = 1
# column sizes of the schema (models.py), checked before anything is written
MAX_KEY, MAX_CLASS, MAX_LAYER, MAX_TEXT, MAX_PLAYER, MAX_LANGUAGE = 200, 80, 200, 200, 40, 8


# ---------------------------------------------------------------------------------------------
# names and lookups


def validate_study_name(name: str) -> str:
    """``name`` if it is 1-80 letters, digits, ``-`` or ``_``; else a :class:`NetrevealError`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise NetrevealError(f"bad study name {name!r}: use 1-80 letters, digits, '-' or '_'")
    return name


def get_study(session: Session, name: str) -> Study:
    """The complete study called ``name``; an unknown name raises an error listing the known ones,
    a study still being written one saying so."""
    study = session.scalars(select(Study).where(Study.name == name)).first()
    if study is None:
        known = session.scalars(select(Study.name).order_by(Study.name).limit(20)).all()
        hint = f"; studies: {', '.join(known)}" if known else "; the database has no study"
        raise NetrevealError(f"unknown study {name!r}{hint}")
    return check_ready(study)


def study_exists(store: Store, name: str) -> bool:
    """True when ``store`` holds a study called ``name`` (complete, or being created)."""
    with store.session() as session:
        return name_in_use(session, name)


def list_studies(store: Store) -> list[dict[str, Any]]:
    """One summary per study, oldest first: id, name, kind, created, ready (False while being
    written), images, items, labels."""
    with store.session() as session:
        images = dict(session.execute(select(StudyImage.study_id, func.count()).group_by(StudyImage.study_id)).all())
        items = dict(session.execute(select(Item.study_id, func.count()).group_by(Item.study_id)).all())
        labels = dict(
            session.execute(
                select(Item.study_id, func.count())
                .join(Guess, Guess.item_id == Item.id)
                .where(Guess.text != "")
                .group_by(Item.study_id)
            ).all()
        )
        return [
            {
                "id": s.id,
                "name": s.name,
                "kind": s.kind,
                "created": s.created_at,
                "ready": s.ready,
                "images": images.get(s.id, 0),
                "items": items.get(s.id, 0),
                "labels": labels.get(s.id, 0),
            }
            for s in session.scalars(select(Study).order_by(Study.id))
        ]


# ---------------------------------------------------------------------------------------------
# pictures


def png_bytes(picture: torch.Tensor) -> bytes:
    """A (3, H, W) RGB or (H, W) grey tensor in [0, 1] as PNG bytes."""
    return _encode_pngs(picture[None])[0]


def png_tensor(data: bytes) -> torch.Tensor:
    """PNG bytes back to a (3, H, W) or (H, W) float tensor in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB" if image.mode not in ("L", "I;16") else "L"))
    tensor = torch.from_numpy(array.copy()).float() / 255.0
    return tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor


def _encode_pngs(pictures: torch.Tensor) -> list[bytes]:
    """PNG bytes of a batch of (3, H, W) or (H, W) pictures in [0, 1] (one conversion, then PIL)."""
    from PIL import Image

    array = (pictures.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    if array.dim() == 4:
        array = array.permute(0, 2, 3, 1)
    out = []
    for one in array.numpy():
        buffer = io.BytesIO()
        Image.fromarray(one, mode="RGB" if one.ndim == 3 else "L").save(buffer, format="PNG", compress_level=3)
        out.append(buffer.getvalue())
    return out


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


# ---------------------------------------------------------------------------------------------
# building a study


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
        from netreveal.store.models import STUDY_KINDS

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
        for (picture_shape, low_shape), group in groups.items():
            for spec in group:
                self.map_sizes.setdefault(spec.layer, list(low_shape))
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                pictures = torch.stack([s.picture.float() for s in chunk])
                lows = torch.stack([s.low.float().to(pictures.device) for s in chunk])
                frames = reveal_frames(pictures, lows, self.percents, background=self.background)
                frame_pngs = _encode_pngs(frames.flatten(0, 1))
                map_pngs = _encode_pngs(torch.stack([s.map.float() for s in chunk]))
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
        study_id = writer.study_id
        for start in range(0, len(self.images), chunk):
            records = self.images[start : start + chunk]
            with writer.batch() as session:
                media = [Media(study_id=study_id, png=self._spool.get(r.png)) for r in records]
                session.add_all(media)
                session.flush()
                rows = [
                    StudyImage(study_id=study_id, key=r.key, true_class=r.true_class,
                               predicted_class=r.predicted_class, probability=r.probability, media_id=m.id)
                    for r, m in zip(records, media)
                ]
                session.add_all(rows)
                session.flush()
                ids.extend(int(row.id) for row in rows)
        return ids

    def _write_items(self, writer: StudyWriter, image_ids: list[int], chunk: int, progress: bool) -> None:
        study_id = writer.study_id
        bar = tqdm(total=len(self.items), desc="storing items", unit="item", disable=not progress)
        for start in range(0, len(self.items), chunk):
            records = self.items[start : start + chunk]
            with writer.batch() as session:
                self._write_item_batch(session, study_id, image_ids, records)
            bar.update(len(records))
        bar.close()

    def _write_item_batch(self, session: Session, study_id: int, image_ids: list[int],
                          records: list[_ItemRecord]) -> None:
        maps = [Media(study_id=study_id, png=self._spool.get(r.png)) for r in records]
        frames = [[Media(study_id=study_id, png=self._spool.get(f)) for f in r.frames] for r in records]
        session.add_all(maps)
        session.add_all([m for row in frames for m in row])
        session.flush()
        items = [
            Item(study_id=study_id, image_id=image_ids[r.image], layer=r.layer, depth=r.depth, cluster=r.cluster,
                 weight=r.weight, channels=r.channels, map_media_id=m.id, label_count=0)
            for r, m in zip(records, maps)
        ]
        session.add_all(items)
        session.flush()
        session.add_all(
            RevealFrame(item_id=item.id, step=step, percent=float(self.percents[step - 1]), media_id=m.id)
            for item, row in zip(items, frames)
            for step, m in enumerate(row, start=1)
        )


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


def json_safe(value: Any) -> Any:
    """``value`` with tuples as lists, tensors as lists, NaN/inf as None, other objects as strings
    (what JSON columns hold on every backend)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------
# creating a study with INV


def create_study(
    store: Store,
    name: str,
    adapter,
    inputs,
    *,
    layers: str | Sequence[str] = "last:9",
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    config=None,
) -> int:
    """Run INV on ``inputs`` (:class:`netreveal.pipeline.Inputs`) and store the study; returns its id.

    Stores every input image, and every significant cluster map (the clusters INV keeps) as an
    item with its layer, depth, cluster, weight, member channels, map and six reveal frames; the
    study records the model, its classes, the layers (shallow to deep) and in ``params`` the INV
    settings, seed, reveal settings and provenance. INV runs ``batch_size`` images at a time
    (``config``: an :class:`netreveal.inv.InvConfig`). Nothing is stored on any error; an existing
    ``name`` is an error found before any work.
    """
    from netreveal.inv import InvConfig, explain_inv
    from netreveal.model.layers import resolve_layers
    from netreveal.pipeline import predict

    validate_study_name(name)
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    _check_inputs(inputs)
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")
    config = config or InvConfig()
    device = adapter.device
    example = inputs.images[:1].to(device)
    names = [n for n, _ in resolve_layers(adapter.model, layers, example=example)]
    order = forward_order(adapter.model, names, example)
    n = inputs.images.shape[0]
    with _builder_for(adapter, name, order, batch_size) as builder:
        inv_params = inv_provenance = None
        bar = tqdm(total=n, desc="INV", unit="img", disable=not progress)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            chunk = inputs.images[start:stop].to(device)
            result = explain_inv(adapter.model, chunk, order, config=config, batch_size=batch_size, seed=seed)
            probs = predict(adapter, chunk, batch_size)
            _add_chunk(builder, adapter, inputs, start, chunk, result.images, probs, order, config.relu_maps)
            inv_params, inv_provenance = result.params, result.provenance
            bar.update(stop - start)
        bar.close()
        builder.params.update(
            _study_params(adapter, builder, inputs, inv_params, inv_provenance, seed, name)
        )
        return builder.write(store, progress=progress)


def create_study_from_inv(store: Store, name: str, adapter, inputs, inv_result, probs: torch.Tensor, *,
                          batch_size: int = 8, progress: bool = False) -> int:
    """Store a study from an INV result already computed on ``inputs`` (as ``netreveal demo`` has).

    ``probs`` (B, C) are the model's softmax probabilities on the inputs. Same records as
    :func:`create_study`; the layer resolution needed for the reveal frames comes from one forward
    pass per ``batch_size`` images.
    """
    validate_study_name(name)
    _check_inputs(inputs)
    n = inputs.images.shape[0]
    if len(inv_result.images) != n:
        raise NetrevealError(f"the INV result has {len(inv_result.images)} images but {n} inputs were given")
    probs = torch.as_tensor(probs)
    if probs.dim() != 2 or probs.shape[0] != n:
        raise NetrevealError(f"probs must be ({n}, classes), got {tuple(probs.shape)}")
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")
    device = adapter.device
    order = forward_order(adapter.model, list(inv_result.layers), inputs.images[:1].to(device))
    relu = bool(inv_result.params.get("relu_maps", True))
    with _builder_for(adapter, name, order, batch_size) as builder:
        for start in tqdm(range(0, n, batch_size), desc="reveal frames", disable=not progress):
            stop = min(start + batch_size, n)
            chunk = inputs.images[start:stop].to(device)
            _add_chunk(builder, adapter, inputs, start, chunk, inv_result.images[start:stop], probs[start:stop],
                       order, relu)
        builder.params.update(
            _study_params(adapter, builder, inputs, inv_result.params, inv_result.provenance, inv_result.seed, name)
        )
        return builder.write(store, progress=progress)


def forward_order(model: torch.nn.Module, names: Sequence[str], example: torch.Tensor) -> list[str]:
    """``names`` sorted by when their module first runs in a forward pass (shallow to deep)."""
    from netreveal.model.hooks import frozen
    from netreveal.model.layers import get_module

    seen: list[str] = []
    handles = []

    def hook_for(layer: str):
        def hook(_module, _args, _out):
            if layer not in seen:
                seen.append(layer)

        return hook

    try:
        for layer in names:
            handles.append(get_module(model, layer).register_forward_hook(hook_for(layer)))
        with frozen(model), torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    missing = [layer for layer in names if layer not in seen]
    if missing:
        raise NetrevealError(f"layer {missing[0]!r} does not run in the model's forward pass")
    return seen


def _check_inputs(inputs) -> None:
    images = getattr(inputs, "images", None)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise NetrevealError("inputs must hold images as a (B, 3, H, W) tensor")
    if images.shape[0] == 0:
        raise NetrevealError("no image given")
    if len(inputs.keys) != images.shape[0]:
        raise NetrevealError("inputs have a different number of keys and images")


def _builder_for(adapter, name: str, order: list[str], batch_size: int) -> StudyBuilder:
    description = json.dumps(json_safe(adapter.describe()), sort_keys=True)
    return StudyBuilder(name, model=description, classes=adapter.class_names, layers=order,
                        batch_size=max(1, batch_size) * 2)


def _add_chunk(builder: StudyBuilder, adapter, inputs, start: int, chunk: torch.Tensor, inv_images, probs,
               order: list[str], relu: bool) -> None:
    """Images and items of one chunk: cluster maps redrawn at each layer's own resolution."""
    from netreveal.inv.maps import cluster_maps
    from netreveal.model.hooks import capture

    cap = capture(adapter.model, chunk, order, backward=False)
    probs = probs.float()
    indices = []
    for i, img in enumerate(inv_images):
        p = int(probs[i].argmax())
        label_names = getattr(inputs, "label_names", None)
        true_class = label_names[start + i] if label_names else None
        indices.append(builder.add_image(inputs.keys[start + i], chunk[i], adapter.class_name(p),
                                         float(probs[i, p]), true_class))
    specs: list[ItemSpec] = []
    for layer in order:
        act = cap.activations[layer]
        if act.dim() != 4:
            raise NetrevealError(f"layer {layer!r} gives {tuple(act.shape)}, not feature maps (B, C, h, w)")
        act = act.clamp_min(0) if relu else act
        entries = [img.layer(layer) for img in inv_images]
        if any(e.weights is None for e in entries):
            raise NetrevealError(f"the INV result lacks the map weights of layer {layer!r}")
        members = [[torch.as_tensor(c.channels, dtype=torch.long) for c in e.clusters] for e in entries]
        weights = torch.stack([e.weights.float() for e in entries]).to(act.device)
        lows = cluster_maps(act, members, weights, tuple(act.shape[-2:]))
        for i, entry in enumerate(entries):
            for j, cluster in enumerate(entry.clusters):
                specs.append(ItemSpec(image=indices[i], picture=chunk[i], layer=layer, cluster=j,
                                      weight=float(cluster.weight), channels=list(cluster.channels),
                                      map=cluster.map.float().to(chunk.device), low=lows[i][j]))
    builder.add_items(specs)


def _study_params(adapter, builder: StudyBuilder, inputs, inv_params, inv_provenance, seed: int, name: str) -> dict:
    from netreveal.provenance import provenance

    size = list(inputs.images.shape[-2:])
    return {
        "method": "inv",
        "seed": int(seed),
        "inv": inv_params or {},
        "input_size": size,
        "reveal": {
            "percents": list(builder.percents),
            "background": builder.background,
            "map_sizes": builder.map_sizes,
            "sigmas": {layer: reveal_sigma(s, size) for layer, s in builder.map_sizes.items()},
        },
        "provenance": provenance(seed=int(seed), study=name, model=adapter.describe(), inv=inv_provenance),
    }


# ---------------------------------------------------------------------------------------------
# export


def export_study(store: Store, name: str, out_dir: str | os.PathLike, *, media: bool = True,
                 force: bool = False) -> Path:
    """Write every record of study ``name`` to ``out_dir``: one CSV per table and ``study.json``
    with all of them, plus (``media``) every picture as ``media/<media_id>.png``.

    Tables: study, images, items, reveal_frames, games, guesses, concepts, concept_members,
    concept_events and the accounts that took part (id, username, role, background, created_at:
    never password hashes or sessions). Written to a staging folder renamed into place; an
    existing ``out_dir`` is replaced only when it is empty or (with ``force``) an earlier export.
    """
    out = Path(out_dir)
    with staged_folder(out, STUDY_EXPORT, force=force, label="export") as tmp:
        with store.session() as session:
            tables = _export_tables(session, get_study(session, name))
            for table, rows in tables.items():
                write_table(tmp / f"{table}.csv", EXPORT_COLUMNS[table],
                            ({k: json_safe(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}
                             for row in rows))
            if media:
                (tmp / "media").mkdir()
                ids = _media_ids(tables)
                for start in range(0, len(ids), 500):
                    part = ids[start : start + 500]
                    for media_id, png in session.execute(select(Media.id, Media.png).where(Media.id.in_(part))):
                        (tmp / "media" / f"{media_id}.png").write_bytes(png)
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "media": "media/<media_id>.png" if media else None,
            **{table: [_json_row(r) for r in rows] for table, rows in tables.items()},
        }
        document["study"] = document["study"][0]
        (tmp / "study.json").write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "study": ("id", "name", "kind", "model", "classes", "layers", "params", "created_at"),
    "images": ("id", "study_id", "key", "true_class", "predicted_class", "probability", "media_id"),
    "items": ("id", "study_id", "image_id", "layer", "depth", "cluster", "weight", "channels", "map_media_id",
              "label_count"),
    "reveal_frames": ("item_id", "step", "percent", "media_id"),
    "games": ("id", "player_id", "item_id", "step", "outcome", "points", "started_at", "finished_at"),
    "guesses": ("id", "request_id", "game_id", "item_id", "player_id", "player_name", "step", "guessed_class",
                "text", "language", "correct", "source", "created_at"),
    "concepts": ("id", "study_id", "annotator_id", "name", "removed", "created_at", "updated_at"),
    "concept_members": ("concept_id", "item_id", "annotator_id"),
    "concept_events": ("id", "concept_id", "annotator_id", "action", "detail", "at"),
    "accounts": ("id", "username", "role", "background", "created_at"),
}


def _export_tables(session: Session, study: Study) -> dict[str, list[dict]]:
    item_ids = select(Item.id).where(Item.study_id == study.id).scalar_subquery()
    concept_ids = select(Concept.id).where(Concept.study_id == study.id).scalar_subquery()
    queries = {
        "study": select(Study).where(Study.id == study.id),
        "images": select(StudyImage).where(StudyImage.study_id == study.id).order_by(StudyImage.id),
        "items": select(Item).where(Item.study_id == study.id).order_by(Item.id),
        "reveal_frames": select(RevealFrame).where(RevealFrame.item_id.in_(item_ids))
        .order_by(RevealFrame.item_id, RevealFrame.step),
        "games": select(Game).where(Game.item_id.in_(item_ids)).order_by(Game.id),
        "guesses": select(Guess).where(Guess.item_id.in_(item_ids)).order_by(Guess.id),
        "concepts": select(Concept).where(Concept.study_id == study.id).order_by(Concept.id),
        "concept_members": select(ConceptMember).where(ConceptMember.concept_id.in_(concept_ids))
        .order_by(ConceptMember.concept_id, ConceptMember.item_id),
        "concept_events": select(ConceptEvent).where(ConceptEvent.concept_id.in_(concept_ids))
        .order_by(ConceptEvent.id),
    }
    tables = {
        table: [{c: getattr(obj, c) for c in EXPORT_COLUMNS[table]} for obj in session.scalars(query)]
        for table, query in queries.items()
    }
    people = {
        row[key]
        for table, key in (("games", "player_id"), ("guesses", "player_id"), ("concepts", "annotator_id"),
                           ("concept_members", "annotator_id"), ("concept_events", "annotator_id"))
        for row in tables[table]
        if row[key] is not None
    }
    accounts = session.scalars(select(Account).where(Account.id.in_(sorted(people))).order_by(Account.id)) if people else []
    tables["accounts"] = [{c: getattr(a, c) for c in EXPORT_COLUMNS["accounts"]} for a in accounts]
    return tables


def _media_ids(tables: Mapping[str, list[dict]]) -> list[int]:
    ids = {r["media_id"] for r in tables["images"]} | {r["map_media_id"] for r in tables["items"]}
    ids |= {r["media_id"] for r in tables["reveal_frames"]}
    return sorted(ids)


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else json_safe(v) for k, v in row.items()}


# ---------------------------------------------------------------------------------------------
# labels


def study_labels(store: Store, name: str) -> list[LabelRecord]:
    """Every guess with text of study ``name`` as a :class:`LabelRecord`, oldest first."""
    with store.session() as session:
        study = get_study(session, name)
        query = (
            select(Guess, Item, StudyImage, Account.username)
            .join(Item, Guess.item_id == Item.id)
            .join(StudyImage, Item.image_id == StudyImage.id)
            .outerjoin(Account, Guess.player_id == Account.id)
            .where(Item.study_id == study.id, Guess.text != "")
            .order_by(Guess.id)
        )
        return [
            LabelRecord(
                item_id=str(item.id),
                image=image.key,
                image_class=image.predicted_class,
                layer=item.layer,
                cluster=int(item.cluster),
                weight=float(item.weight),
                text=guess.text,
                step=int(guess.step),
                correct=bool(guess.correct),
                player=guess.player_name or username or "",
                language=guess.language or "en",
            )
            for guess, item, image, username in session.execute(query)
            if guess.text.strip()
        ]


# ---------------------------------------------------------------------------------------------
# embedding cache


class StoreEmbeddingCache:
    """Label embeddings kept in the ``embeddings`` table, keyed by (model id, text).

    Fits :class:`netreveal.labels.embed.EmbeddingCache`. Vectors are stored as float32
    little-endian bytes; ``get`` returns 1-D float32 arrays. Texts longer than 200 characters are
    not cached (the column's size); putting a text again replaces its vector.
    """

    def __init__(self, store: Store, chunk: int = 500):
        self.store = store
        self.chunk = int(chunk)

    def get(self, texts: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """Cached vectors of the ``texts`` held for ``model``."""
        self._check_model(model)
        wanted = sorted({t for t in texts if self._cacheable(t)})
        out: dict[str, np.ndarray] = {}
        with self.store.session() as session:
            for start in range(0, len(wanted), self.chunk):
                part = wanted[start : start + self.chunk]
                query = select(Embedding.text, Embedding.vector).where(Embedding.model == model, Embedding.text.in_(part))
                for text, vector in session.execute(query):
                    out[text] = np.frombuffer(vector, dtype="<f4").astype(np.float32)
        return out

    def put(self, vectors: Mapping[str, Any], model: str) -> None:
        """Store (or replace) the vectors of ``model``."""
        self._check_model(model)
        rows = [
            {"model": model, "text": text, "vector": _vector_bytes(v)}
            for text, v in vectors.items()
            if self._cacheable(text)
        ]
        if not rows:
            return
        dialect = self.store.engine.dialect.name
        with self.store.session() as session:
            for start in range(0, len(rows), self.chunk):
                part = rows[start : start + self.chunk]
                if dialect in ("sqlite", "postgresql"):
                    module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
                    stmt = module.insert(Embedding).values(part)
                    stmt = stmt.on_conflict_do_update(index_elements=["model", "text"],
                                                      set_={"vector": stmt.excluded.vector})
                    session.execute(stmt)
                else:
                    for row in part:
                        session.merge(Embedding(**row))

    @staticmethod
    def _cacheable(text: str) -> bool:
        return isinstance(text, str) and 0 < len(text) <= MAX_TEXT and "\x00" not in text

    @staticmethod
    def _check_model(model: str) -> None:
        if not isinstance(model, str) or not model or len(model) > 200:
            raise NetrevealError("the embedding model id must be a non-empty string of at most 200 characters")


def _vector_bytes(vector: Any) -> bytes:
    if isinstance(vector, torch.Tensor):
        vector = vector.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(vector, dtype="<f4").reshape(-1)).tobytes()


__all__ = [
    "ItemSpec",
    "StoreEmbeddingCache",
    "StudyBuilder",
    "create_study",
    "create_study_from_inv",
    "export_study",
    "forward_order",
    "get_study",
    "json_safe",
    "list_studies",
    "png_bytes",
    "png_tensor",
    "study_exists",
    "study_labels",
    "validate_study_name",
]
