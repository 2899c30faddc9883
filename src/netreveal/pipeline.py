"""The jobs behind the CLI: read inputs, run methods, score them, write the report and tables.

Methods come as :class:`~netreveal.methods.MethodRun` (a method with its own options; a bare
method runs with its defaults); ``common`` holds the settings of the pipeline itself (batch size,
seed, progress). Ground truth comes from a :class:`~netreveal.data.groundtruth.GroundTruth` loader
the caller chooses.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from netreveal import results as result_io
from netreveal.csvtable import Table, write_table
from netreveal.data.groundtruth import DEFAULT_LOADER, GroundTruth
from netreveal.data.inputs import Inputs
from netreveal.errors import NetrevealError
from netreveal.methods import Evaluation, Method, MethodOptions, MethodRun, as_runs
from netreveal.methods.options import scoring_batch
from netreveal.metrics.info import METRICS
from netreveal.model.adapter import ModelAdapter
from netreveal.provenance import provenance
from netreveal.report import Report
from netreveal.report.sections import add_sections

__all__ = ["Inputs", "Outcome", "check_runs", "evaluate", "explain", "extra_evaluations", "format_table",
           "parse_target", "predict", "read_folder", "run_methods", "score_heatmaps", "write_csv"]


class Outcome(NamedTuple):
    """One run of a method on all inputs: the result and the seconds it took."""

    run: MethodRun
    result: Any
    seconds: float


def image_key(root: str | os.PathLike, path: str | os.PathLike) -> str:
    """An image's unique name: its path relative to the folder ``root`` (``/``-separated, with its
    extension, so ``cat.png``, ``cat.jpg`` and ``sub/cat.png`` stay apart), or its file name when
    ``root`` is the image file itself."""
    root, path = Path(root), Path(path)
    return path.relative_to(root).as_posix() if root.is_dir() else path.name


def read_folder(adapter: ModelAdapter, root: str | os.PathLike, limit: int | None = None,
                ground_truth: str | GroundTruth = DEFAULT_LOADER, workers: int | None = 0) -> Inputs:
    """Load and check every image under ``root`` at once, with the ground truth the
    ``ground_truth`` loader finds beside each (a loader or its name, see
    :mod:`netreveal.data.groundtruth`); keys are :func:`image_key`. For image sets of any size,
    read shard by shard instead (:func:`netreveal.data.stream.stream_shards` over a
    :class:`~netreveal.data.sources.FolderSource`)."""
    from netreveal.data.sources import FolderSource, Reading
    from netreveal.data.stream import read_all

    return read_all(FolderSource.from_folder(root, limit, ground_truth), Reading.for_model(adapter), workers)


def parse_target(target: str | None, adapter: ModelAdapter) -> int | None:
    """A class given by index or by name; None means 'the predicted class'."""
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < len(adapter.class_names):
            raise NetrevealError(f"class index {index} out of range: the model has {len(adapter.class_names)} classes")
        return index
    if target in adapter.class_names:
        return adapter.class_names.index(target)
    raise NetrevealError(f"unknown class {target!r}")


@torch.no_grad()
def predict(adapter: ModelAdapter, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities (B, C)."""
    model = adapter.model
    was = model.training
    model.eval()
    try:
        out = [model(images[i : i + batch_size]).softmax(dim=1) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out)


def score_heatmaps(adapter: ModelAdapter, inputs: Inputs, maps: torch.Tensor, targets: torch.Tensor,
                   steps: int, baseline: str, batch_size: int, progress: bool, *,
                   ranking: torch.Tensor | None = None, convention: str = "netreveal") -> dict[str, torch.Tensor]:
    """Deletion/insertion AUC per image (ranking ``ranking``, default ``maps``, under ``convention``),
    and pointing game / energy of ``maps`` where ground truth exists."""
    from netreveal.metrics.localization import energy_in_mask, pointing_game
    from netreveal.metrics.perturbation import deletion_insertion

    scores = deletion_insertion(adapter.model, inputs.images, maps if ranking is None else ranking, targets,
                                steps=steps, baseline=baseline, batch_size=batch_size, progress=progress,
                                convention=convention)
    out = {"deletion_auc": scores.deletion_auc, "insertion_auc": scores.insertion_auc}
    have = [i for i, m in enumerate(inputs.masks) if m is not None]
    if have:
        masks = torch.stack([inputs.masks[i] for i in have])
        hits = torch.full((len(maps),), float("nan"))
        energy = torch.full((len(maps),), float("nan"))
        hits[have] = pointing_game(maps[have], masks).float()
        energy[have] = energy_in_mask(maps[have], masks).float()
        out["pointing_game"] = hits
        out["energy_in_mask"] = energy
    return out


def check_runs(runs: Sequence[Method | MethodRun], adapter: ModelAdapter, example: torch.Tensor) -> None:
    """Run every method's up-front check (layers exist, concept files load...) on one example."""
    for run in as_runs(runs):
        run.check(adapter, example)


def _common(common: MethodOptions | None) -> MethodOptions:
    return MethodOptions() if common is None else common


def run_methods(
    adapter: ModelAdapter, inputs: Inputs, runs: Sequence[Method | MethodRun],
    common: MethodOptions | None = None, target: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Outcome]]:
    """Run each method on all inputs: ``(probs, targets, {label: Outcome})``; every method explains
    ``target`` (None: each image's predicted class)."""
    common = _common(common)
    probs = predict(adapter, inputs.images, common.batch_size)
    targets = probs.argmax(dim=1) if target is None else torch.full((len(probs),), target, dtype=torch.long)
    done = {run.label: _timed_run(run, adapter, inputs, targets) for run in as_runs(runs)}
    return probs, targets, done


def _timed_run(run: MethodRun, adapter: ModelAdapter, inputs: Inputs, targets: torch.Tensor) -> Outcome:
    start = time.perf_counter()
    result = run.run(adapter, inputs.images, targets)
    return Outcome(run, result, time.perf_counter() - start)


def _method_metrics(run: MethodRun, result, adapter: ModelAdapter, inputs: Inputs, targets: torch.Tensor,
                    steps: int, baseline: str, common: MethodOptions,
                    convention: str = "netreveal") -> dict[str, torch.Tensor]:
    """Per-image scores of a method's heatmaps (empty for methods without one); deletion/insertion
    ranks the method's :meth:`~netreveal.methods.base.Method.ranking_maps`."""
    if run.method.heatmaps is None:
        return {}
    return score_heatmaps(adapter, inputs, run.method.heatmaps(result), targets, steps, baseline,
                          scoring_batch(common.batch_size), common.progress,
                          ranking=run.method.ranking_maps(result), convention=convention)


def explain(adapter: ModelAdapter, inputs: Inputs, runs: Sequence[Method | MethodRun],
            common: MethodOptions | None, out_dir: str | os.PathLike, target: int | None = None, steps: int = 50,
            baseline: str = "blur", title: str = "netreveal report", force: bool = False,
            convention: str = "netreveal", notes: Sequence[str] = ()) -> Path:
    """Explain every input with every method and write the HTML report (and saved results) to
    ``out_dir``; an earlier report there is replaced only with ``force``. Deletion/insertion is
    scored under ``convention`` (see :mod:`netreveal.metrics.perturbation_conventions`); ``notes``
    are lines shown at the top of the report."""
    if len(set(inputs.keys)) != len(inputs.keys):
        raise NetrevealError("two input images have the same key")
    common, runs = _common(common), as_runs(runs)
    options = {"common": dataclasses.asdict(common),
               **{run.label: _plain(dataclasses.asdict(run.options)) for run in runs}}
    report = Report(out_dir, title=title, meta={"model": adapter.describe(), "options": options,
                                                "metric_convention": convention,
                                                "provenance": provenance(seed=common.seed)}, force=force)
    try:
        probs, targets, done = run_methods(adapter, inputs, runs, common, target)
        report.set_class_definitions(inputs.class_definitions)
        for note in notes:
            report.add_note(note)
        for i, key in enumerate(inputs.keys):
            report.add_image(key, inputs.images[i], probs[i], adapter.class_names, inputs.label_names[i],
                             truth=inputs.masks[i])
        write_table(report.staged("results/images.csv"), IMAGES_HEADER, _image_rows(adapter, inputs, probs))
        rows = []
        for run in runs:
            _, result, seconds = done[run.label]
            result_io.save(result, report.staged(f"results/{run.label.replace('+', 'p')}.pt"))
            metrics = _method_metrics(run, result, adapter, inputs, targets, steps, baseline, common, convention)
            add_sections(report, inputs.keys, inputs.images, result, run.method.title)
            for i, key in enumerate(inputs.keys):
                if metrics and report.images[key].sections:
                    section = report.images[key].sections[-1]
                    section.metrics.update(
                        {_label(k): float(v[i]) for k, v in metrics.items() if not torch.isnan(v[i])}
                    )
            rows.append(_summary_row(run.label, metrics, seconds, len(inputs.keys)))
        report.add_table("Methods (means over images)", SUMMARY_HEADER, rows, first=True)
        accuracy = _accuracy(probs, inputs.labels)
        if accuracy is not None:
            report.add_note(f"Model accuracy on these images: {100 * accuracy:.1f}% ({len(inputs.keys)} images).")
        return report.write()
    except BaseException:
        report.discard()
        raise


IMAGES_HEADER = ["index", "key", "true class", "predicted class", "probability"]


def _image_rows(adapter: ModelAdapter, inputs: Inputs, probs: torch.Tensor) -> list[list]:
    """One row per input, in the order of every saved result's images."""
    top = probs.argmax(dim=1)
    return [[i, key, inputs.label_names[i], adapter.class_name(int(top[i])), float(probs[i, top[i]])]
            for i, key in enumerate(inputs.keys)]


def _plain(options: dict) -> dict:
    """Options for the report's metadata (nested options as dicts already; others as text)."""
    return {k: v if isinstance(v, (int, float, str, bool, dict, type(None))) else str(v) for k, v in options.items()}


SUMMARY_METRICS = ("deletion_auc", "insertion_auc", "pointing_game", "energy_in_mask")
SUMMARY_HEADER = ["method", "images", *(METRICS[k].heading for k in SUMMARY_METRICS), "s / image"]


def _label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else metric


def _mean(values: torch.Tensor | None) -> float | str:
    if values is None:
        return "–"
    values = values[~torch.isnan(values.float())].float()
    return float(values.mean()) if len(values) else "–"


def _summary_row(name: str, metrics: dict, seconds: float, n: int) -> list:
    return [name, n, *(_mean(metrics.get(k)) for k in SUMMARY_METRICS), seconds / max(n, 1)]


def _accuracy(probs: torch.Tensor, labels: list[int | None]) -> float | None:
    pairs = [(int(p), y) for p, y in zip(probs.argmax(dim=1), labels) if y is not None]
    return sum(p == y for p, y in pairs) / len(pairs) if pairs else None


def _variants(run: MethodRun, sweeps: dict[str, list] | None, size: tuple[int, int]) -> list[MethodRun]:
    """The runs of ``run`` in an evaluation: one per value of each sweep its options have (I-GOS's
    mask sizes), else itself."""
    names = {f.name for f in dataclasses.fields(run.options)}
    out = [run]
    for field, values in (sweeps or {}).items():
        if field in names:
            out = [MethodRun(r.method, options, label)
                   for r in out for label, options in (r.method.variant(r.options, field, v, size) for v in values)]
    return out


def evaluate(adapter: ModelAdapter, inputs: Inputs, runs: Sequence[Method | MethodRun],
             common: MethodOptions | None = None, steps: int = 50, baseline: str = "blur",
             sweeps: dict[str, list] | None = None,
             on_row: Callable[[list], None] | None = None,
             convention: str = "netreveal") -> tuple[list[str], list[list], dict[str, Outcome]]:
    """The evaluation table (one row per method run: mean metrics, time per image) and the outcomes.

    A method whose options have a field listed in ``sweeps`` (I-GOS/iGOS++: ``{"mask_size": [7,
    28, 224]}``) runs once per value; mask sizes above the input side mean full resolution. Every
    method explains the same targets (the model's predictions) on the same images, scored under
    the deletion/insertion ``convention``. ``on_row`` sees each row when done.
    """
    common = _common(common)
    probs = predict(adapter, inputs.images, common.batch_size)
    targets = probs.argmax(dim=1)
    rows, done = [], {}
    for run in as_runs(runs):
        for variant in _variants(run, sweeps, tuple(inputs.images.shape[-2:])):
            outcome = done[variant.label] = _timed_run(variant, adapter, inputs, targets)
            metrics = _method_metrics(variant, outcome.result, adapter, inputs, targets, steps, baseline, common,
                                      convention)
            rows.append(_summary_row(variant.label, metrics, outcome.seconds, len(inputs.keys)))
            if on_row is not None:
                on_row(rows[-1])
    return SUMMARY_HEADER, rows, done


def extra_evaluations(adapter: ModelAdapter, inputs: Inputs, outcomes: Iterable[Outcome],
                      common: MethodOptions | None = None, steps: int = 50, baseline: str = "blur",
                      convention: str = "netreveal") -> list[Table]:
    """The tables each method adds to an evaluation (SAG: its statistics; INV: per layer)."""
    common = _common(common)
    evaluation = Evaluation(adapter, inputs, steps=steps, baseline=baseline, convention=convention,
                            batch_size=scoring_batch(common.batch_size), progress=common.progress)
    return [table for run, result, seconds in outcomes
            for table in run.method.extra_evaluations(evaluation, result, seconds, run.options)]


def write_csv(path: str | os.PathLike, header: list[str], rows: list[list]) -> Path:
    """Write a table as CSV atomically (see :func:`netreveal.csvtable.write_table`)."""
    return write_table(path, header, rows)


def format_table(header: list[str], rows: list[list]) -> str:
    """A plain-text table for the terminal."""
    cells = [header] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
