"""Reading a run's shards back: per-image rows, the summary table over all images and the extra
tables methods build from every shard's values. Only one shard's files are read at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from netreveal.csvtable import Table, unescape_cell
from netreveal.runs.plan import RunPlan, ShardSpec
from netreveal.runs.shard_work import METRICS, METRICS_CSV, PROBS, SHARD_JSON


def shard_doc(folder: Path) -> dict[str, Any]:
    return json.loads((folder / SHARD_JSON).read_text(encoding="utf-8"))


def shard_probs(folder: Path) -> torch.Tensor:
    return torch.load(folder / PROBS, map_location="cpu", weights_only=True)


def metric_rows(folder: Path) -> list[dict[str, Any]]:
    """A shard's per-image metric rows: index, key, method and each metric (None where missing)."""
    with open(folder / METRICS_CSV, newline="", encoding="utf-8") as fh:
        return [{"index": int(r["index"]), "key": unescape_cell(r["key"]), "method": unescape_cell(r["method"]),
                 **{m: float(r[m]) if r[m] != "" else None for m in METRICS}} for r in csv.DictReader(fh)]


def shards_in_order(plan: RunPlan, root: Path) -> Iterator[tuple[ShardSpec, Path]]:
    from netreveal.runs.folder import SHARDS

    for shard in plan.shards():
        yield shard, root / SHARDS / shard.name


def summary_rows(plan: RunPlan, root: Path) -> tuple[list[str], list[list]]:
    """The methods table (means over every image of every shard, seconds per image)."""
    from netreveal.pipeline import SUMMARY_HEADER, _summary_row

    labels = [m.label for m in plan.methods]
    values: dict[str, dict[str, list[float]]] = {label: {m: [] for m in METRICS} for label in labels}
    seconds = dict.fromkeys(labels, 0.0)
    n = 0
    for _shard, folder in shards_in_order(plan, root):
        doc = shard_doc(folder)
        n += len(doc["keys"])
        for label in labels:
            seconds[label] += doc["seconds"][label]
        for row in metric_rows(folder):
            for m in METRICS:
                values[row["method"]][m].append(float("nan") if row[m] is None else row[m])
    rows = []
    for label in labels:
        metrics = {m: torch.tensor(v, dtype=torch.float32) for m, v in values[label].items() if v}
        rows.append(_summary_row(label, metrics, seconds[label], n))
    return SUMMARY_HEADER, rows


def extra_tables(plan: RunPlan, root: Path) -> list[Table]:
    """The tables each method adds to an evaluation, from the values every shard kept."""
    parts: dict[str, list] = {m.label: [] for m in plan.methods}
    seconds = dict.fromkeys(parts, 0.0)
    for _shard, folder in shards_in_order(plan, root):
        doc = shard_doc(folder)
        for label in parts:
            seconds[label] += doc["seconds"][label]
            if doc["values"].get(label) is not None:
                parts[label].append(doc["values"][label])
    tables = []
    for spec in plan.methods:
        if parts[spec.label]:
            run = spec.run()
            tables += run.method.evaluation_tables(parts[spec.label], seconds[spec.label], run.options)
    return tables


__all__ = ["extra_tables", "metric_rows", "shard_doc", "shard_probs", "shards_in_order", "summary_rows"]
