"""Running ``explain`` and ``evaluate`` over an image set shard by shard through an engine.

Each shard is one work item (:mod:`netreveal.runs.shard_work`): a worker loads the model once and
then reads, explains, scores and writes shard after shard. In this process each finished shard is
recorded in the manifest and advances one progress bar. A resumed run skips the shards its
manifest names; an uninterrupted run uses the same shard layout and per-shard seeds, so both end
with the same numbers.
"""

from __future__ import annotations

import contextlib
import os
import sys
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from netreveal.csvtable import Table
from netreveal.engines.base import Engine
from netreveal.runs.combine import extra_tables, summary_rows
from netreveal.runs.folder import EVALUATE_RUN, EXPLAIN_RUN, RunFolder, RunKinds
from netreveal.runs.plan import RunPlan
from netreveal.runs.shard_work import ShardJob, setup, sharing_model, work


def run_shards(plan: RunPlan, folder: RunFolder, engine: Engine, *, progress: bool = True, adapter=None) -> None:
    """Work on every shard ``folder``'s manifest does not name as done, recording each as it ends.
    A run that fails before its first shard is done leaves nothing behind; after that it stays
    in ``out`` to be resumed. ``adapter``, the model of ``plan`` already loaded here, is used by
    workers in this process instead of a second copy."""
    todo = [s for s in plan.shards() if s.index not in folder.manifest.done]
    stage = str(folder.place) if folder.staged else None
    jobs = [ShardJob(shard, str(folder.out), stage) for shard in todo]
    done = sum(entry["images"] for entry in folder.manifest.done.values())
    bar = tqdm(total=len(plan.source), initial=done, unit="img", desc=f"{plan.command} ({len(jobs)} shards to do)",
               disable=not progress)

    def on_result(index: int, summary: dict) -> None:
        folder.record(todo[index].index, summary)
        bar.update(summary["images"])

    try:
        with sharing_model(plan.model, adapter) if adapter is not None else contextlib.nullcontext():
            engine.map(partial(setup, plan), work, jobs, on_result)
    except BaseException:
        folder.discard()
        raise
    finally:
        bar.close()


def _open(plan: RunPlan, out: str | os.PathLike, kinds: RunKinds, resume: bool, force: bool) -> RunFolder:
    folder = RunFolder.open(out, kinds, resume=resume, force=force, parameters=plan.parameters(),
                            shards=len(plan.shards()))
    if resume and folder.mode != "resume":
        print(f"nothing to resume in {out}: starting a new run", file=sys.stderr)
    return folder


def explain_run(plan: RunPlan, out: str | os.PathLike, engine: Engine, adapter, *, resume: bool = False,
                force: bool = False, progress: bool = True, title: str = "netreveal report") -> Path:
    """Explain every image of ``plan`` into the report folder ``out``; returns the report's index."""
    from netreveal.runs.report import write_report

    folder = _open(plan, out, EXPLAIN_RUN, resume, force)
    if folder.manifest.complete:
        return Path(out) / "index.html"
    run_shards(plan, folder, engine, progress=progress, adapter=adapter)
    return write_report(plan, folder, adapter, title=title, force=force)


def evaluate_run(plan: RunPlan, out: str | os.PathLike, engine: Engine, *, resume: bool = False,
                 force: bool = False, progress: bool = True,
                 adapter=None) -> tuple[list[str], list[list], list[Table]]:
    """Evaluate every method of ``plan`` on every image, shard by shard into the run folder
    ``out``: the summary table (header, rows) and the tables the methods add. ``adapter``: the
    model of ``plan`` when it is loaded here already (see :func:`run_shards`)."""
    folder = _open(plan, out, EVALUATE_RUN, resume, force)
    run_shards(plan, folder, engine, progress=progress, adapter=adapter)
    header, rows = summary_rows(plan, folder.place)
    tables = extra_tables(plan, folder.place)
    folder.finish()
    return header, rows, tables


__all__ = ["evaluate_run", "explain_run", "run_shards"]
