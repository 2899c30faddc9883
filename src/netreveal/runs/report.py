"""The HTML report of an ``explain`` run, assembled from its shards once all are done: per shard
its images are read again and its saved results rendered, so memory holds one shard at a time.

The report folder keeps the run (``manifest.json``, ``shards/``) beside ``index.html``;
``results/images.csv`` and ``results/metrics.csv`` list every image, and for a run of one shard
``results/<method>.pt`` holds each method's result as an unsharded run does (for more shards each
shard's own files hold them).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from netreveal import results as result_io
from netreveal.csvtable import write_table
from netreveal.data.sources import Reading
from netreveal.data.stream import read_all
from netreveal.fileio import EXPLANATION_RUN
from netreveal.provenance import provenance
from netreveal.report import Report
from netreveal.report.sections import add_sections
from netreveal.runs.combine import metric_rows, shard_doc, shard_probs, shards_in_order, summary_rows
from netreveal.runs.folder import SHARDS, RunFolder
from netreveal.runs.manifest import MANIFEST
from netreveal.runs.plan import RunPlan
from netreveal.runs.shard_work import METRICS, METRICS_HEADER


def _link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of ``source`` made of hard links (plain copies where links fail)."""
    shutil.copytree(source, target, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _class_definitions(source) -> dict[str, list[str]] | None:
    """What makes each class, where the images' ground-truth loader knows it."""
    from netreveal.data.groundtruth import class_definitions, ground_truth_loader

    loader = getattr(source, "ground_truth", None)
    return None if loader is None else class_definitions(ground_truth_loader(loader))


def write_report(plan: RunPlan, folder: RunFolder, adapter, *, title: str, force: bool) -> Path:
    """Render the report of the finished run in ``folder`` and put it in place of the run folder."""
    from netreveal.pipeline import IMAGES_HEADER, _label

    root = folder.place
    options = {"common": {"batch_size": plan.batch_size, "seed": plan.seed, "progress": False},
               **{m.label: m.options for m in plan.methods}}
    meta = {"model": adapter.describe(), "options": options, "provenance": provenance(seed=plan.seed),
            "run": {"shard_size": plan.shard_size, "shards": folder.manifest.shards}}
    report = Report(folder.out, title=title, meta=meta, force=force, replaceable=(EXPLANATION_RUN,))
    try:
        reading = Reading.for_model(adapter)
        image_rows, all_metrics, predicted, labels = [], [], [], []
        truth_seen = False  # the loader's class table describes these images only if one has ground truth
        for shard, path in shards_in_order(plan, root):
            doc, probs = shard_doc(path), shard_probs(path)
            inputs = read_all(shard.source, reading, plan.loader_workers)
            for i, key in enumerate(inputs.keys):
                report.add_image(key, inputs.images[i], probs[i], adapter.class_names, inputs.label_names[i],
                                 truth=inputs.masks[i])
            truth_seen = truth_seen or any(mask is not None for mask in inputs.masks)
            top = probs.argmax(dim=1)
            image_rows += [[shard.start + i, key, doc["label_names"][i], adapter.class_name(int(top[i])),
                            float(probs[i, top[i]])] for i, key in enumerate(doc["keys"])]
            predicted += top.tolist()
            labels += doc["labels"]
            rows = metric_rows(path)
            all_metrics += rows
            for spec in plan.methods:
                result = result_io.load(path / doc["results"][spec.label])
                run = spec.run()
                add_sections(report, inputs.keys, inputs.images, result, run.method.title)
                for row in rows:
                    if row["method"] != spec.label or not report.images[row["key"]].sections:
                        continue
                    report.images[row["key"]].sections[-1].metrics.update(
                        {_label(m): row[m] for m in METRICS if row[m] is not None})
            del inputs
        write_table(report.staged("results/images.csv"), IMAGES_HEADER, image_rows)
        write_table(report.staged("results/metrics.csv"), METRICS_HEADER,
                    [[r["index"], r["key"], r["method"], *(r[m] for m in METRICS)] for r in all_metrics])
        if folder.manifest.shards == 1:
            first = root / SHARDS / plan.shards()[0].name
            for spec in plan.methods:
                _link_or_copy(str(first / shard_doc(first)["results"][spec.label]),
                              str(report.staged(f"results/{spec.label.replace('+', 'p')}.pt")))
        if truth_seen:
            report.set_class_definitions(_class_definitions(plan.source))
        header, rows = summary_rows(plan, root)
        report.add_table("Methods (means over images)", header, rows)
        pairs = [(p, y) for p, y in zip(predicted, labels) if y is not None]
        if pairs:
            accuracy = sum(p == y for p, y in pairs) / len(pairs)
            report.add_note(f"Model accuracy on these images: {100 * accuracy:.1f}% ({len(labels)} images).")
        _link_tree(root / SHARDS, report.staged(SHARDS))
        dataclasses.replace(folder.manifest, complete=True).save(report.staged(MANIFEST).parent)
    except BaseException:
        report.discard()
        raise
    return report.write()


__all__ = ["write_report"]
