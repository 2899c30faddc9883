"""Writing outputs so a reader never sees half of them."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


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
