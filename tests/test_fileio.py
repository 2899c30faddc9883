"""Staged output folders: the old folder or the whole new one, never half of either; never a
folder that is not an earlier output of the same kind; nothing left behind by a killed run."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from netreveal import fileio
from netreveal.errors import NetrevealError
from netreveal.fileio import (
    MARKER,
    check_output_folder,
    output_kind,
    remove_stale_staging,
    staged_folder,
)

KIND = "test output"


def test_staged_folder_replaces_on_success_and_keeps_the_old_one_on_error(tmp_path):
    out = tmp_path / "out"
    with staged_folder(out, KIND) as stage:
        (stage / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first" and output_kind(out) == KIND
    with pytest.raises(RuntimeError), staged_folder(out, KIND, force=True) as stage:
        (stage / "a.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "a.txt").read_text() == "first"
    with staged_folder(out, KIND, force=True) as stage:
        (stage / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", MARKER]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_an_earlier_output_is_replaced_only_with_force(tmp_path):
    out = tmp_path / "out"
    with staged_folder(out, KIND) as stage:
        (stage / "a.txt").write_text("first")
    refused = pytest.raises(NetrevealError, match="holds an earlier test output; pass --force to replace it")
    with refused, staged_folder(out, KIND) as stage:
        (stage / "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_output_that_appears_while_writing_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NetrevealError, match="is not empty"), staged_folder(out, KIND) as stage:
        (stage / "a.txt").write_text("new")
        out.mkdir()
        (out / "thesis.txt").write_text("written meanwhile")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_output_folder(tmp_path):
    check_output_folder(tmp_path / "new", KIND)  # free
    check_output_folder(tmp_path / "new" / "deeper" / "out", KIND)  # missing parents are created later
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", KIND)
    old = tmp_path / "old"
    old.mkdir()
    fileio.write_marker(old, KIND)
    (old / "index.html").write_text("x")
    with pytest.raises(NetrevealError, match="pass --force"):
        check_output_folder(old, KIND)
    check_output_folder(old, KIND, force=True)
    with pytest.raises(NetrevealError, match="holds a test output, not an other output"):
        check_output_folder(old, "other output", force=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")  # an index.html alone is no report
    with pytest.raises(NetrevealError, match="is not empty and holds no earlier test output"):
        check_output_folder(mine, KIND, force=True)
    (mine / MARKER).write_text("not json")
    with pytest.raises(NetrevealError, match="holds no earlier"):
        check_output_folder(mine, KIND, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NetrevealError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "file", KIND, force=True)
    (tmp_path / "link").symlink_to(old)
    with pytest.raises(NetrevealError, match="symbolic link"):
        check_output_folder(tmp_path / "link", KIND, force=True)
    with pytest.raises(NetrevealError, match="cannot write output"):
        check_output_folder(tmp_path / "file" / "out", KIND)
    with (pytest.raises(NetrevealError, match="cannot write output /proc/x/report"),
          staged_folder("/proc/x/report", KIND)):
        pass


# -- what killed runs leave behind -------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from netreveal.fileio import staged_folder
    with staged_folder(sys.argv[1], "test output", force=True) as stage:
        (stage / "half.txt").write_text("half")
        print(stage, flush=True)
        time.sleep(600)
""")


def _killed_run(out):
    """A real writer process killed with SIGKILL while its stage is half written; its stage path."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    stage = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert stage and os.path.isdir(stage), stage
    return stage


def _own_tag():
    return fileio._owner_tag()


def test_the_next_run_removes_what_a_killed_run_left_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    with staged_folder(out, KIND) as stage:
        (stage / "a.txt").write_text("first")
    stale_stage = _killed_run(out)
    host, pid, start = _own_tag().split("-")
    # a replace killed after moving the old folder aside (its writer has exited)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True,
                          text=True)
    dead_pid = int(dead.stdout)
    stale_old = tmp_path / f".out.old-{host}-{dead_pid}-1-0123abcd"
    stale_old.mkdir()
    (stale_old / "a.txt").write_text("older")
    # what must stay: a live run's stage (this process), one on another machine, one from before
    # stages carried their writer, a pid reused by a live process with another start time is gone
    live = tmp_path / f".netreveal-report-{host}-{pid}-{start}-abcd1234"
    other_host = tmp_path / f".netreveal-report-00000000-{dead_pid}-1-abcd1234"
    legacy = tmp_path / ".netreveal-report-k2j4h5g6"
    reused = tmp_path / f".netreveal-export-{host}-{pid}-{int(start) + 1}-abcd1234"
    users = [tmp_path / ".netreveal-notes", tmp_path / ".out.old", tmp_path / "thesis"]
    for folder in [live, other_host, legacy, reused, *users]:
        folder.mkdir()
        (folder / "x.txt").write_text("x")
    with staged_folder(out, KIND, force=True) as stage:
        assert not os.path.exists(stale_stage) and not stale_old.exists() and not reused.exists()
        (stage / "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "second"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out", live.name, other_host.name, legacy.name, *(u.name for u in users)])
    assert all((tmp_path / name / "x.txt").is_file() for name in left if name != "out")


def test_a_refused_run_still_tidies_and_a_live_stage_survives(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.txt").write_text("mine")
    stale_stage = _killed_run(tmp_path / "other")
    assert re.match(r"^\.netreveal-output-[0-9a-f]{8}-\d+-\d+-[a-z0-9_]{8}$", os.path.basename(stale_stage))
    with pytest.raises(NetrevealError, match="not empty"):
        check_output_folder(out, KIND, force=True)
    assert not os.path.exists(stale_stage)
    with staged_folder(tmp_path / "new", KIND) as stage:  # a live stage is never another run's garbage
        (stage / "a.txt").write_text("new")
        assert remove_stale_staging(tmp_path) == [] and (stage / "a.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]
    assert (out / "thesis.txt").read_text() == "mine"
