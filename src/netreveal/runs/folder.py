"""A run's folder: where its manifest and shards live, under the output-folder rules of
:mod:`netreveal.fileio`.

A new run is written into a hidden staging folder beside ``out`` and moved into place as soon as
its first shard is done (from then on a killed run can be resumed); a run killed before that leaves
only a staging folder, which the next run removes. ``out`` is refused when it holds anything but a
run or a finished output of this command; an unfinished run there needs ``--resume`` (continue it)
or ``--force`` (start over), a finished one ``--force`` (for ``evaluate``, whose run folder backs
a CSV that is replaced anyway, none).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netreveal.errors import NetrevealError
from netreveal.fileio import (
    EVALUATION_RUN,
    EXPLANATION_REPORT,
    EXPLANATION_RUN,
    check_writable_place,
    existing_output,
    make_stage,
    owner_tag,
    refuse_other_kind,
    replace_folder,
    write_marker,
    writer_gone,
)
from netreveal.runs.manifest import Manifest, check_same_parameters

SHARDS = "shards"


@dataclass(frozen=True)
class RunKinds:
    """The markers of one command's run folder: while it runs, once done; its staging label."""

    running: str
    done: str
    label: str
    replace_done_without_force: bool


EXPLAIN_RUN = RunKinds(EXPLANATION_RUN, EXPLANATION_REPORT, "report", False)
EVALUATE_RUN = RunKinds(EVALUATION_RUN, EVALUATION_RUN, "evaluation", True)


def _complete(out: Path) -> bool:
    try:
        return Manifest.load(out).complete
    except NetrevealError:
        return False


def check_run_folder(out: str | os.PathLike, kinds: RunKinds, *, resume: bool, force: bool) -> str:
    """How ``out`` may be used: ``"new"`` (free or empty), ``"resume"`` (a run of this command to
    continue) or ``"replace"``; a :class:`NetrevealError` when it may not. Removes what killed
    runs left beside ``out`` first."""
    found = existing_output(out, kinds.done)
    mode = "new"
    if found is not None:
        if found not in (kinds.running, kinds.done):
            refuse_other_kind(out, found, kinds.done)
        unfinished = found == kinds.running and not _complete(Path(out))
        if resume:
            mode = "resume"
        elif force or (not unfinished and kinds.replace_done_without_force):
            mode = "replace"
        elif unfinished:
            raise NetrevealError(f"output folder {out} holds an unfinished {kinds.running}; pass --resume to "
                                 "continue it or --force to start over")
        else:
            raise NetrevealError(f"output folder {out} holds an earlier {kinds.done}; pass --force to replace it")
    check_writable_place(out)
    return mode


class RunFolder:
    """The folder of one run: :attr:`place` is where its files go now (the staging folder until the
    first shard is done, then ``out``)."""

    def __init__(self, out: Path, kinds: RunKinds, manifest: Manifest, place: Path, mode: str):
        self.out, self.kinds, self.manifest, self.place, self.mode = out, kinds, manifest, place, mode

    @property
    def staged(self) -> bool:
        return self.place != self.out

    @classmethod
    def open(cls, out: str | os.PathLike, kinds: RunKinds, *, resume: bool, force: bool,
             parameters: dict[str, Any], shards: int) -> RunFolder:
        """Continue the run in ``out`` (``resume``, its parameters must be ``parameters``) or stage a
        new one; ``out`` is checked by :func:`check_run_folder`."""
        out = Path(out)
        mode = check_run_folder(out, kinds, resume=resume, force=force)
        if mode == "resume":
            manifest = Manifest.load(out)
            check_same_parameters(manifest.parameters, parameters, out)
            if manifest.writer and manifest.writer != owner_tag() and not writer_gone(manifest.writer):
                pid = manifest.writer.split("-")[1] if manifest.writer.count("-") == 2 else "?"
                raise NetrevealError(f"cannot resume {out}: process {pid} is still running it (or cannot be "
                                     "shown to have stopped); wait for it or stop it first")
            manifest.writer = owner_tag()
            manifest.save(out)
            return cls(out, kinds, manifest, out, mode)
        stage = make_stage(out, kinds.label)
        write_marker(stage, kinds.running)
        manifest = Manifest(parameters, shards, writer=owner_tag())
        manifest.save(stage)
        (stage / SHARDS).mkdir()
        return cls(out, kinds, manifest, stage, mode)

    def record(self, index: int, summary: dict[str, Any]) -> None:
        """Note shard ``index`` as done (its files are in place); the first one moves the run to ``out``."""
        self.manifest.done[index] = summary
        self.manifest.save(self.place)
        if self.staged:
            self._promote()

    def _promote(self) -> None:
        now = check_run_folder(self.out, self.kinds, resume=False, force=self.mode == "replace")
        if now != self.mode and not (self.mode == "replace" and now == "new"):
            raise NetrevealError(f"output folder {self.out} changed while the run was starting; run again")
        try:
            replace_folder(self.place, self.out)
        except OSError as exc:
            raise NetrevealError(f"cannot write output {self.out}: {exc.strerror or type(exc).__name__}") from None
        self.place = self.out

    def finish(self) -> None:
        self.manifest.complete = True
        self.manifest.save(self.place)

    def discard(self) -> None:
        """Remove a run that never reached ``out`` (after an error before its first shard was done)."""
        if self.staged:
            shutil.rmtree(self.place, ignore_errors=True)

    def shard_folder(self, index: int) -> Path:
        return self.place / SHARDS / f"{index:05d}"


__all__ = ["EVALUATE_RUN", "EXPLAIN_RUN", "SHARDS", "RunFolder", "RunKinds", "check_run_folder"]
