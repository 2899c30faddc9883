"""The work on one shard, as an engine runs it (possibly in another process): read the shard's
images, predict, run every method, score the maps, and write the shard's files into the run
folder atomically (a temporary folder beside it, renamed into ``shards/NNNNN`` when complete).

Files of a shard: ``shard.json`` (keys, labels, predictions, seconds and the methods' evaluation
values), ``probs.pt`` (softmax probabilities), ``images.csv`` and ``metrics.csv`` (per-image rows)
and one result file per method run (:func:`netreveal.results.save`, with provenance).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netreveal import results as result_io
from netreveal.csvtable import write_table
from netreveal.data.sources import Reading
from netreveal.data.stream import read_all
from netreveal.engines.base import ModelSpec
from netreveal.fileio import make_stage
from netreveal.methods import Evaluation
from netreveal.methods.options import MethodOptions, scoring_batch
from netreveal.runs.folder import SHARDS
from netreveal.runs.plan import RunPlan, ShardSpec

SHARD_JSON = "shard.json"
PROBS = "probs.pt"
IMAGES_CSV = "images.csv"
METRICS_CSV = "metrics.csv"
METRICS = ("deletion_auc", "insertion_auc", "pointing_game", "energy_in_mask")
METRICS_HEADER = ["index", "key", "method", *METRICS]


def result_file(label: str) -> str:
    """The file name of a method run's saved result (``gradcam.pt``, ``igospp.pt``, ``igospp_7x7.pt``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label.replace("+", "p")).strip("_") + ".pt"


@dataclass(frozen=True)
class ShardJob:
    """A shard to work on and where its files go: the run's staging folder while it exists, else ``out``."""

    shard: ShardSpec
    out: str
    stage: str | None = None


@dataclass
class ShardState:
    """What a worker builds once (:func:`setup`): the model and the run's plan."""

    adapter: Any
    plan: RunPlan


_LOADED: dict[str, Any] = {}  # models this process loaded already (the caller's, for the local engine)


def _model_key(spec: ModelSpec) -> str:
    return json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)


@contextlib.contextmanager
def sharing_model(spec: ModelSpec, adapter: Any) -> Iterator[None]:
    """While the block runs, :func:`setup` in this process uses ``adapter`` instead of loading
    ``spec`` again (an engine that works in this process then holds one copy of the model)."""
    _LOADED[_model_key(spec)] = adapter
    try:
        yield
    finally:
        _LOADED.pop(_model_key(spec), None)


def setup(plan: RunPlan) -> ShardState:
    """Load the model of ``plan`` (once per worker; in the calling process the one it shares)."""
    adapter = _LOADED.get(_model_key(plan.model))
    return ShardState(plan.model.load() if adapter is None else adapter, plan)


def work(state: ShardState, job: ShardJob) -> dict[str, Any]:
    """Do one shard and put its files in place; returns what the manifest records of it."""
    from netreveal.pipeline import IMAGES_HEADER, _image_rows, _method_metrics, predict

    adapter, plan, shard = state.adapter, state.plan, job.shard
    inputs = read_all(shard.source, Reading.for_model(adapter), plan.loader_workers)
    torch.manual_seed(shard.seed)
    probs = predict(adapter, inputs.images, plan.batch_size)
    targets = probs.argmax(dim=1) if plan.target is None else torch.full((len(probs),), plan.target, dtype=torch.long)
    tmp = make_stage(job.out, "shard")
    try:
        common = MethodOptions(batch_size=plan.batch_size, seed=shard.seed, progress=False)
        evaluation = Evaluation(adapter, inputs, steps=plan.steps, baseline=plan.baseline,
                                convention=plan.convention, batch_size=scoring_batch(plan.batch_size), progress=False)
        seconds, values, files, rows = {}, {}, {}, []
        for spec in plan.methods:
            run = spec.run(seed=shard.seed)
            start = time.perf_counter()
            result = run.run(adapter, inputs.images, targets)
            seconds[run.label] = time.perf_counter() - start
            files[run.label] = result_file(run.label)
            result_io.save(result, tmp / files[run.label])
            metrics = _method_metrics(run, result, adapter, inputs, targets, plan.steps, plan.baseline, common,
                                      plan.convention)
            if metrics:
                rows += [[shard.start + i, key, run.label,
                          *(None if m not in metrics or torch.isnan(metrics[m][i]) else float(metrics[m][i])
                            for m in METRICS)] for i, key in enumerate(inputs.keys)]
            if plan.command == "evaluate":  # the extra tables of an evaluation
                values[run.label] = run.method.evaluation_values(evaluation, result, run.options)
            del result
        image_rows = _image_rows(adapter, inputs, probs)
        write_table(tmp / IMAGES_CSV, IMAGES_HEADER, [[shard.start + r[0], *r[1:]] for r in image_rows])
        write_table(tmp / METRICS_CSV, METRICS_HEADER, rows)
        torch.save(probs.cpu().contiguous(), tmp / PROBS)
        doc = {"index": shard.index, "start": shard.start, "stop": shard.stop, "seed": shard.seed,
               "keys": inputs.keys, "labels": inputs.labels, "label_names": inputs.label_names,
               "predicted": probs.argmax(dim=1).tolist(), "seconds": seconds, "values": values, "results": files}
        (tmp / SHARD_JSON).write_text(json.dumps(doc), encoding="utf-8")
        _place(tmp, job)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"images": len(inputs.keys), "files": sorted([SHARD_JSON, PROBS, IMAGES_CSV, METRICS_CSV, *files.values()]),
            "seconds": seconds}


def _place(tmp: Path, job: ShardJob) -> None:
    """Rename the complete shard folder into the run folder (which may move from its staging
    folder to ``out`` meanwhile: then the rename is tried once more)."""
    for attempt in range(2):
        folder = Path(job.stage) if job.stage and Path(job.stage).is_dir() else Path(job.out)
        target = folder / SHARDS / job.shard.name
        try:
            if target.exists():  # an earlier try of this shard that the manifest never recorded
                shutil.rmtree(target)
            os.replace(tmp, target)
            return
        except FileNotFoundError:
            if attempt:
                raise


__all__ = ["IMAGES_CSV", "METRICS", "METRICS_CSV", "METRICS_HEADER", "PROBS", "SHARD_JSON", "ShardJob", "ShardState",
           "result_file", "setup", "sharing_model", "work"]
