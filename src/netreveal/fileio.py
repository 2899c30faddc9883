"""Writing outputs so a reader never sees half of them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from netreveal.errors import NetrevealError


def replace_folder(stage: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move the finished folder ``stage`` to ``out`` (same file system).

    An existing ``out`` is renamed aside first, put back if the move fails, and removed after it
    succeeds, so ``out`` always holds either the old or the new complete folder.
    """
    stage, out = Path(stage), Path(out)
    if not out.exists():
        os.replace(stage, out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(stage, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_output_folder(out: str | os.PathLike, marker: str, what: str) -> None:
    """NetrevealError unless ``out`` can be written: its parent folder exists and ``out`` is free,
    an empty folder, or an earlier ``what`` (a folder holding the file ``marker``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NetrevealError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise NetrevealError(f"output folder {out} is not empty and holds no earlier {what}")
    if not out.resolve().parent.is_dir():
        raise NetrevealError(f"folder {out.resolve().parent} does not exist")


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, prefix: str = ".netreveal-") -> Iterator[Path]:
    """A new temporary folder beside ``out`` to write into. When the block ends it replaces ``out``
    (:func:`replace_folder`); when the block raises it is removed and ``out`` is left as it was."""
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=Path(out).resolve().parent))
    try:
        yield stage
        replace_folder(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
