"""Writing output folders so a reader never sees half of one, and nothing else is ever replaced.

Every output folder netreveal writes (reports, exports) holds a marker file, :data:`MARKER`,
naming its kind. A command writes to ``out`` only when it is free, an empty folder, or (with
``force``) an earlier output of the same kind. The folder is written into a hidden staging folder
beside ``out`` and moved into place at the end. Staging folders carry their writer's host, process
id and process start time in their names, so a later run can remove those of a killed run (and
only those: never one whose writer still runs, nor one it cannot prove is netreveal's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from netreveal.errors import NetrevealError

MARKER = "netreveal-output.json"
EXPLANATION_REPORT = "explanation report"
LABEL_REPORT = "label report"
USER_STUDY_REPORT = "user-study report"
STUDY_EXPORT = "study export"
EXPLANATION_RUN = "explanation run"  # an explain run's shards while it runs (an explanation report once done)
EVALUATION_RUN = "evaluation run"  # an evaluate run's shards (and, once done, its manifest says so)

_STAGE = re.compile(r"^\.netreveal-[a-z]+-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-[a-z0-9_]{8}$")
_OLD = re.compile(r"^\..+\.old-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-[0-9a-f]{8}$")


# ---------------------------------------------------------------- who is writing


def _host_id() -> str:
    """This machine and process-id namespace (pids mean nothing across either), hashed."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha1(f"{socket.gethostname()} {namespace}".encode("utf-8", "replace")).hexdigest()[:8]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of process ``pid`` (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner_tag() -> str:
    """``host-pid-start`` of this process (start 0 where the system does not tell)."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return f"{_host_id()}-{pid}-{stat[1] if stat else 0}"


def owner_tag() -> str:
    """``host-pid-start`` of this process: who writes a staging folder or a run."""
    return _owner_tag()


def writer_gone(tag: str) -> bool:
    """True only when the process an :func:`owner_tag` names provably no longer runs."""
    try:
        host, pid, start = tag.split("-")
        return _writer_gone(host, int(pid), int(start))
    except ValueError:
        return False


def _writer_gone(host: str, pid: int, start: int) -> bool:
    """True only when the process that made a staging folder provably no longer runs."""
    if host != _host_id() or os.name != "posix" or pid <= 0:
        return False  # another machine's process, or no safe way to ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (owned by someone else)
    stat = _proc_stat(pid)
    if stat is None:
        return False
    state, started = stat
    return state in ("Z", "X") or (start != 0 and started != start)  # a zombie, or the pid was reused


def remove_stale_staging(folder: str | os.PathLike) -> list[Path]:
    """Remove the staging folders (``.netreveal-*`` and ``.NAME.old-*``) that killed netreveal
    runs left in ``folder``; returns what was removed. Anything else is left alone."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _STAGE.match(entry.name) or _OLD.match(entry.name)
        if not found or entry.is_symlink() or not entry.is_dir():
            continue
        if _writer_gone(found["host"], int(found["pid"]), int(found["start"])):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed


# ---------------------------------------------------------------- markers and checks


def write_marker(folder: str | os.PathLike, kind: str) -> None:
    """Mark ``folder`` as a netreveal output of ``kind``."""
    from netreveal import __version__

    Path(folder, MARKER).write_text(json.dumps({"kind": kind, "netreveal": __version__}) + "\n", encoding="utf-8")


def output_kind(folder: str | os.PathLike) -> str | None:
    """The kind of netreveal output ``folder`` holds, or None when it holds none."""
    try:
        data = json.loads(Path(folder, MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _a(kind: str) -> str:
    """``kind`` with its article (the kinds above: an explanation report, a user-study report...)."""
    return f"{'an' if kind[:1] in 'aeio' else 'a'} {kind}"


def _reason(exc: OSError) -> str:
    text = exc.strerror or type(exc).__name__
    return f"{text}: {exc.filename}" if exc.filename else text


def existing_output(out: str | os.PathLike, kind: str) -> str | None:
    """The kind of netreveal output at ``out`` (None: nothing there, or an empty folder); a
    NetrevealError when ``out`` is a link, a file, unreadable, or a folder holding something else
    (``kind`` names what the caller writes). Removes what killed runs left beside ``out`` first
    (:func:`remove_stale_staging`)."""
    out = Path(out)
    if out.resolve().parent.is_dir():
        remove_stale_staging(out.resolve().parent)
    if out.is_symlink():
        raise NetrevealError(f"output {out} is a symbolic link; give a folder path")
    if out.exists() and not out.is_dir():
        raise NetrevealError(f"output {out} exists and is not a folder; choose another output folder")
    try:
        busy = out.is_dir() and any(out.iterdir())
    except OSError as exc:
        raise NetrevealError(f"cannot read output folder {out}: {_reason(exc)}") from None
    if not busy:
        return None
    found = output_kind(out)
    if found is None:
        raise NetrevealError(f"output folder {out} is not empty and holds no earlier {kind}; "
                             "choose a new or empty folder")
    return found


def refuse_other_kind(out: str | os.PathLike, found: str, kind: str) -> None:
    """NetrevealError: ``out`` holds a ``found``, not a ``kind``."""
    raise NetrevealError(f"output folder {out} holds {_a(found)}, not {_a(kind)}; choose another folder")


def check_writable_place(out: str | os.PathLike) -> None:
    """NetrevealError unless ``out`` can be created: its nearest existing parent is a folder this user
    may write in."""
    place = Path(out).resolve().parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir() or not os.access(place, os.W_OK | os.X_OK):
        raise NetrevealError(f"cannot write output {out}: {place} is not a folder this user may write in")


def check_output_folder(out: str | os.PathLike, kind: str, *, force: bool = False,
                        replaceable: Collection[str] = ()) -> None:
    """NetrevealError unless ``out`` may be written as a ``kind``: it is free, an empty folder, an
    output of a ``replaceable`` kind (the unfinished run this output completes), or (only with
    ``force``) an earlier ``kind``, and the place can be written (see :func:`existing_output`)."""
    found = existing_output(out, kind)
    if found is not None and found not in replaceable:
        if found != kind:
            refuse_other_kind(out, found, kind)
        if not force:
            raise NetrevealError(f"output folder {out} holds an earlier {kind}; pass --force to replace it")
    check_writable_place(out)


# ---------------------------------------------------------------- staging and replacing


def make_stage(out: str | os.PathLike, label: str) -> Path:
    """A new hidden folder beside ``out`` to write into (missing parent folders are created)."""
    parent = Path(out).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".netreveal-{label}-{_owner_tag()}-", dir=parent))
    except OSError as exc:
        raise NetrevealError(f"cannot write output {out}: {_reason(exc)}") from None


def replace_folder(stage: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move the finished folder ``stage`` to ``out`` (same file system).

    An existing ``out`` is renamed aside first, put back if the move fails, and removed after it
    succeeds, so ``out`` always holds either the old or the new complete folder.
    """
    stage, out = Path(stage), Path(out)
    if not out.exists() and not out.is_symlink():
        os.replace(stage, out)
        return
    old = out.parent / f".{out.name}.old-{_owner_tag()}-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(stage, out)
    except BaseException:
        os.replace(old, out)
        raise
    if old.is_symlink():
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)


def finish_stage(stage: Path, out: str | os.PathLike, kind: str, *, force: bool = False,
                 replaceable: Collection[str] = ()) -> None:
    """Mark the complete ``stage`` as a ``kind``, check ``out`` again (it may have changed while
    the stage was written) and move the stage into place."""
    write_marker(stage, kind)
    check_output_folder(out, kind, force=force, replaceable=replaceable)
    try:
        replace_folder(stage, out)
    except OSError as exc:
        raise NetrevealError(f"cannot write output {out}: {_reason(exc)}") from None


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, kind: str, *, force: bool = False, label: str = "output") -> Iterator[Path]:
    """A new staging folder beside ``out`` to write a ``kind`` into. ``out`` is checked first
    (:func:`check_output_folder`); when the block ends the stage replaces ``out``; when the block
    raises the stage is removed and ``out`` is left as it was."""
    check_output_folder(out, kind, force=force)
    stage = make_stage(out, label)
    try:
        yield stage
        finish_stage(stage, out, kind, force=force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
