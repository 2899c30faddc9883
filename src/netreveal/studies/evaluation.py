"""Evaluation studies as a service: create one with a model (run the methods, render their
explanations, build the design), analyse it into a report, export it.

An evaluation study (``Study.kind == "evaluation"``) asks people to rate explanations and to
predict the model's output with and without them (:mod:`netreveal.userstudy`). Creating one runs
every method on every image, renders each explanation as a PNG overlay, builds the question
template with :func:`netreveal.userstudy.make_design` and stores it with
:func:`netreveal.store.evaluation.write_evaluation_study`. Heavy imports (torch, the methods,
scipy) happen inside the functions that need them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netreveal.csvtable import write_table
from netreveal.errors import NetrevealError
from netreveal.fileio import STUDY_EXPORT, check_output_folder, staged_folder
from netreveal.store.db import Store
from netreveal.store.evaluation import (
    EXPORT_COLUMNS,
    EvalImage,
    export_tables,
    get_evaluation,
    iso_time,
    study_data,
    study_methods,
    write_evaluation_study,
)
from netreveal.store.studies import media_pngs

if TYPE_CHECKING:
    import torch

    from netreveal.userstudy import Analysis

DISPLAY_MIN_SIZE = 224  # pictures smaller than this are enlarged (bicubic) before storing
EXPORT_FORMAT = "netreveal-evaluation-export"
EXPORT_VERSION = 1


def create_evaluation_study(
    store: Store,
    name: str,
    adapter,
    inputs,
    methods: str | Sequence[str],
    *,
    n_forward: int | None = None,
    seed: int = 0,
    attention_every: int = 8,
    n_options: int = 4,
    batch_size: int = 8,
    layers: str = "auto:9",
    progress: bool = False,
) -> int:
    """Run ``methods`` (names from :mod:`netreveal.methods`) on ``inputs``
    (:class:`netreveal.pipeline.Inputs`) and store an evaluation study; returns its id.

    Every method explains the model's predicted class. Its heatmap (INV: the combined map of the
    deepest layer) is shown as its positive part min-max scaled to [0, 1], overlaid on the image
    (:func:`netreveal.report.render.overlay`). The design comes from
    :func:`netreveal.userstudy.make_design` with ``seed``, ``n_forward`` forward-simulation images
    (default: half), one attention check per ``attention_every`` questions and ``n_options``
    choices per forward question (the model's next most likely classes first). INV explains
    ``layers``. Bad input (unknown method, a method without heatmaps, an existing name) fails
    before any work; nothing is stored on any error.
    """
    import torch

    from netreveal.methods import get_methods
    from netreveal.pipeline import check_runs, predict
    from netreveal.provenance import provenance
    from netreveal.store.json_values import json_safe
    from netreveal.store.studies import study_exists, validate_study_name
    from netreveal.userstudy.design import make_design

    validate_study_name(name)
    chosen = get_methods(methods)
    names = [m.name for m in chosen]
    if len(set(names)) != len(names):
        raise NetrevealError("a method is listed twice")
    for method in chosen:
        if method.heatmaps is None:
            raise NetrevealError(f"method {method.name!r} gives no heatmap to show; choose heatmap methods")
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    images = getattr(inputs, "images", None)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise NetrevealError("inputs must hold images as a (B, 3, H, W) tensor")
    n = images.shape[0]
    if len(inputs.keys) != n:
        raise NetrevealError("inputs have a different number of keys and images")
    if n < 2:
        raise NetrevealError("an evaluation study needs at least two images (one to rate, one to simulate)")
    if n_forward is not None and not 0 <= n_forward < n:
        raise NetrevealError(f"--forward must be between 0 and {n - 1} (the images minus one to rate)")
    if len(adapter.class_names) < 2:
        raise NetrevealError("the model needs at least two classes")
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")

    runs = [m.configure({"layers": layers, "batch_size": batch_size, "seed": seed, "progress": progress})
            for m in chosen]
    images = inputs.images.to(adapter.device)
    check_runs(runs, adapter, images[:1])
    probs = predict(adapter, images, batch_size).float().cpu()
    targets = probs.argmax(dim=1)
    heatmaps: dict[str, torch.Tensor] = {}
    for run in runs:
        result = run.run(adapter, images, targets.to(adapter.device))
        heatmaps[run.name] = display_maps(run.method.heatmaps(result), tuple(images.shape[-2:]))

    keys = [str(k) for k in inputs.keys]
    ranked = probs.argsort(dim=1, descending=True)[:, :max(2, n_options)]
    predictions = {k: [adapter.class_name(int(c)) for c in ranked[i]] for i, k in enumerate(keys)}
    design = make_design(keys, names, predictions, list(adapter.class_names), seed=seed, n_forward=n_forward,
                         attention_every=attention_every, n_options=n_options)
    records = []
    label_names = getattr(inputs, "label_names", None) or [None] * n
    for i, key in enumerate(keys):
        p = int(targets[i])
        records.append(EvalImage(
            key=key, png=picture_png(images[i]), predicted_class=adapter.class_name(p), probability=float(probs[i, p]),
            true_class=label_names[i],
            explanations={m: overlay_png(images[i], heatmaps[m][i]) for m in names}))
    params = {
        "design": {"n_forward": n_forward, "attention_every": attention_every, "n_options": n_options},
        "heatmaps": "positive part, min-max scaled to [0, 1], overlaid on the image; INV: deepest layer's combined map",
        "layers": layers,
        "input_size": list(images.shape[-2:]),
        "provenance": provenance(seed=int(seed), study=name, model=adapter.describe(), methods=names),
    }
    description = json.dumps(json_safe(adapter.describe()), sort_keys=True)
    return write_evaluation_study(store, name, model=description, classes=list(adapter.class_names), methods=names,
                                  design=design, seed=seed, images=records, params=params)


def display_maps(maps, size: tuple[int, int]) -> torch.Tensor:
    """Heatmaps (B, H, W) as shown: resized to ``size``, positive part, each min-max scaled to [0, 1]
    (a map with no positive value is scaled as it is)."""
    import torch

    from netreveal.imaging import minmax, upsample

    maps = torch.as_tensor(maps).detach().float()
    if maps.dim() != 3:
        raise NetrevealError(f"a method gave heatmaps of shape {tuple(maps.shape)}, not (B, H, W)")
    maps = upsample(maps.cpu(), size)
    positive = maps.clamp_min(0)
    has_positive = positive.flatten(1).amax(dim=1) > 0
    return minmax(torch.where(has_positive[:, None, None], positive, maps))


def picture_png(image, min_size: int = DISPLAY_MIN_SIZE) -> bytes:
    """A (3, H, W) image in [0, 1] as PNG, enlarged so its short side is at least ``min_size``."""
    from netreveal.report.render import to_pil

    return _png(to_pil(image, min_size=min_size))


def overlay_png(image, heatmap, min_size: int = DISPLAY_MIN_SIZE) -> bytes:
    """The heatmap (H, W) in [0, 1] blended over the image (3, H, W), as PNG (enlarged like the image)."""
    from netreveal.report.render import overlay, to_pil

    return _png(to_pil(overlay(image, heatmap), min_size=min_size))


def _png(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def analyse_study(
    store: Store,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    finished_only: bool = False,
    confidence: float = 0.95,
    alpha: float = 0.05,
    title: str | None = None,
    force: bool = False,
) -> tuple[Analysis, Path | None]:
    """Analyse study ``name`` (:func:`netreveal.userstudy.analyse`: per-method means with
    confidence intervals, Wilcoxon signed-rank tests with Holm correction, forward simulation with
    and without explanations, novices vs experts; participants failing an attention check are
    excluded) and, with ``out_dir``, write the HTML report with the raw CSV and the analysis JSON
    (an earlier report there is replaced only with ``force``). Returns the analysis and the
    report's index path (None without ``out_dir``)."""
    from netreveal.userstudy import analyse, write_analysis_report

    data = study_data(store, name, finished_only=finished_only)
    if not data.responses:
        raise NetrevealError(f"study {name!r} has no responses to analyse yet")
    with store.session() as session:
        methods = study_methods(get_evaluation(session, name))
    analysis = analyse(data.responses, data.participants, questions=data.design, methods=methods or None,
                       confidence=confidence, alpha=alpha)
    if out_dir is None:
        return analysis, None
    return analysis, write_analysis_report(analysis, out_dir, title=title or f"Evaluation study {name}", force=force)


def export_evaluation(store: Store, name: str, out_dir: str | os.PathLike, *, media: bool = True,
                      force: bool = False) -> Path:
    """Write every record of evaluation study ``name`` to ``out_dir``: one CSV per table (study,
    images, eval_questions, eval_pictures, eval_participants, eval_responses and the accounts that
    took part, without password hashes), ``study.json`` with all of them, ``responses.csv`` (one
    row per response, analysis-ready, :data:`netreveal.userstudy.records.CSV_HEADER`),
    ``study-data.json`` (:class:`netreveal.userstudy.StudyData`) and, with ``media``, every
    picture as ``media/<media_id>.png``.

    Written to a staging folder renamed into place; an existing ``out_dir`` is replaced only
    when it is empty or (with ``force``) an earlier export.
    """
    from netreveal.store.json_values import json_safe
    from netreveal.userstudy.design import exclusions
    from netreveal.userstudy.records import write_responses_csv

    out = Path(out_dir)
    check_output_folder(out, STUDY_EXPORT, force=force)  # before reading the study
    data = study_data(store, name)
    with staged_folder(out, STUDY_EXPORT, force=force, label="export") as tmp:
        with store.session() as session:
            tables = export_tables(session, get_evaluation(session, name))
            for table, rows in tables.items():
                write_table(tmp / f"{table}.csv", EXPORT_COLUMNS[table], rows)
            if media:
                (tmp / "media").mkdir()
                ids = sorted({r["media_id"] for r in tables["images"]}
                             | {r["media_id"] for r in tables["eval_pictures"]})
                for media_id, png in media_pngs(session, ids):
                    (tmp / "media" / f"{media_id}.png").write_bytes(png)
        write_responses_csv(data.responses, tmp / "responses.csv", participants=data.participants,
                            excluded=exclusions(data.responses, data.design))
        data.save(tmp / "study-data.json")
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "media": "media/<media_id>.png" if media else None,
            **{table: [{k: _json_value(v, json_safe) for k, v in row.items()} for row in rows]
               for table, rows in tables.items()},
        }
        document["study"] = document["study"][0]
        (tmp / "study.json").write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def _json_value(value: Any, json_safe) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
    return json_safe(value)


__all__ = [
    "DISPLAY_MIN_SIZE",
    "analyse_study",
    "create_evaluation_study",
    "display_maps",
    "export_evaluation",
    "overlay_png",
    "picture_png",
]
