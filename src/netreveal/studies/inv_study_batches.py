"""Creating a reveal study from an image source of any size, batch by batch: each batch of images
is read, explained with INV, turned into items and reveal frames and committed in one transaction,
so memory holds one batch and a killed creation loses at most the batch it was working on.

The study stays unfinished (not served) until its last batch is in. ``resume`` continues an
unfinished study of the same name whose creation was killed: its settings (images, model, layers,
seed, batch size) must be those given, and it goes on after the images it already holds. Any error
(or Ctrl+C) removes the study again, as :func:`netreveal.store.building.study_in_batches` does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sqlalchemy import func, select
from tqdm.auto import tqdm

from netreveal.data.sources import ImageSource, Reading
from netreveal.data.stream import read_all, stream_shards
from netreveal.errors import NetrevealError
from netreveal.fileio import owner_tag, writer_gone
from netreveal.store.building import StudyWriter, _start, is_abandoned, remove_study
from netreveal.store.db import Store
from netreveal.store.json_values import json_safe
from netreveal.store.models import Item, Study, StudyImage
from netreveal.store.studies import validate_study_name
from netreveal.studies.builder import StudyBuilder
from netreveal.studies.inv_study import _add_chunk, _builder_for, forward_order
from netreveal.studies.reveal import reveal_sigma

BUILD = "build"  # the study's params entry that describes an unfinished creation


def create_study_in_batches(store: Store, name: str, adapter, source: ImageSource, *,
                            layers: str | Sequence[str] = "last:9", seed: int = 0, batch_size: int = 8,
                            progress: bool = False, resume: bool = False, loader_workers: int = 0,
                            config=None) -> int:
    """Run INV on every image of ``source`` and store the study batch by batch; returns its id.
    Stores the same records as :func:`netreveal.studies.inv_study.create_study`."""
    from netreveal.inv import InvConfig, explain_inv
    from netreveal.model.layers import resolve_layers
    from netreveal.pipeline import predict

    validate_study_name(name)
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    config = config or InvConfig()
    reading = Reading.for_model(adapter)
    device = adapter.device
    example = read_all(source.slice(0, 1), reading, workers=0).images[:1].to(device)
    order = forward_order(adapter.model, [n for n, _ in resolve_layers(adapter.model, layers, example=example)],
                          example)
    build = json_safe({"images": source.describe(), "layers": order, "seed": int(seed), "batch_size": batch_size,
                       "model": adapter.describe()})
    with _builder_for(adapter, name, order, batch_size) as builder:
        study_id, stored = _open(store, builder, build, resume)
        try:
            writer = StudyWriter(store, study_id)
            bar = tqdm(total=len(source), initial=stored, desc="INV", unit="img", disable=not progress)
            for inputs in stream_shards(source.slice(stored, len(source)), reading, batch_size, loader_workers):
                chunk = inputs.images.to(device)
                result = explain_inv(adapter.model, chunk, order, config=config, batch_size=batch_size, seed=seed)
                probs = predict(adapter, chunk, batch_size)
                _add_chunk(builder, adapter, inputs, 0, chunk, result.images, probs, order, config.relu_maps)
                done = {**build, "map_sizes": builder.map_sizes, "inv": result.params,
                        "inv_provenance": result.provenance, "writer": owner_tag()}
                builder.flush(writer, {BUILD: done})
                bar.update(len(inputs.keys))
            bar.close()
            _finish(store, writer, builder, adapter, name, int(seed))
        except BaseException:
            remove_study(store, study_id)
            raise
        return study_id


def _open(store: Store, builder: StudyBuilder, build: dict, resume: bool) -> tuple[int, int]:
    """The study to write (a new one, or the unfinished one to resume) and how many images it holds."""
    name = builder.name
    with store.session() as session:
        found = session.scalars(select(Study).where(Study.name == name)).first()
        if found is not None and found.building_at is not None and resume:
            earlier = dict((found.params or {}).get(BUILD) or {})
            writer = earlier.pop("writer", "")
            for key in ("map_sizes", "inv", "inv_provenance"):
                earlier.pop(key, None)
            if earlier != build:
                differs = next((k for k in sorted(set(earlier) | set(build)) if earlier.get(k) != build.get(k)), "?")
                raise NetrevealError(f"cannot resume study {name!r}: it was started with other settings ({differs} "
                                     "differs); remove it or use another name")
            if writer and writer != owner_tag() and not writer_gone(writer) and not is_abandoned(found):
                raise NetrevealError(f"cannot resume study {name!r}: its creation is still running")
            stored = session.scalar(select(func.count()).where(StudyImage.study_id == found.id)) or 0
            builder.reserve_keys(session.scalars(select(StudyImage.key).where(StudyImage.study_id == found.id)).all())
            found.params = json_safe({**found.params, BUILD: {**found.params[BUILD], "writer": owner_tag()}})
            return int(found.id), int(stored)
        if found is not None and resume and found.building_at is None:
            raise NetrevealError(f"study {name!r} is complete; nothing to resume")
        if found is not None and found.building_at is not None and not is_abandoned(found):
            raise NetrevealError(f"study {name!r} already exists, unfinished (its creation is running or was "
                                 "killed); pass --resume to continue it")
    if resume:
        print(f"no unfinished study {name!r} to resume: creating it", file=sys.stderr)
    study = Study(name=name, kind=builder.kind, model=builder.model, classes=builder.classes, layers=builder.layers,
                  params=json_safe({BUILD: {**build, "writer": owner_tag()}}))
    return _start(store, study), 0


def _finish(store: Store, writer: StudyWriter, builder: StudyBuilder, adapter, name: str, seed: int) -> None:
    """Replace the creation's notes by the study's params (as a study written at once has) and mark it complete."""
    from netreveal.provenance import provenance

    with store.session() as session:
        study = session.get(Study, writer.study_id)
        build = dict(study.params.get(BUILD) or {})
        images = session.scalar(select(func.count()).where(StudyImage.study_id == study.id)) or 0
        items = session.scalar(select(func.count()).where(Item.study_id == study.id)) or 0
        size = [adapter.input_size, adapter.input_size]
        map_sizes = build.get("map_sizes") or {}
        study.params = json_safe({
            "method": "inv", "seed": seed, "inv": build.get("inv") or {}, "input_size": size,
            "reveal": {"percents": list(builder.percents), "background": builder.background, "map_sizes": map_sizes,
                       "sigmas": {layer: reveal_sigma(s, size) for layer, s in map_sizes.items()}},
            "provenance": provenance(seed=seed, study=name, model=adapter.describe(), inv=build.get("inv_provenance")),
            "counts": {"images": int(images), "items": int(items)}})
    writer.finish()


__all__ = ["create_study_in_batches"]
