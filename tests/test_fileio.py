"""Staged output folders: the old folder or the whole new one, never half of either."""

import pytest

from netreveal.errors import NetrevealError
from netreveal.fileio import check_output_folder, staged_folder


def test_staged_folder_replaces_on_success_and_keeps_the_old_one_on_error(tmp_path):
    out = tmp_path / "out"
    with staged_folder(out) as stage:
        (stage / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), staged_folder(out) as stage:
        (stage / "a.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "a.txt").read_text() == "first"
    with staged_folder(out) as stage:
        (stage / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_check_output_folder(tmp_path):
    check_output_folder(tmp_path / "new", "index.html", "report")  # free
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", "index.html", "report")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "index.html").write_text("x")
    check_output_folder(tmp_path / "old", "index.html", "report")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(NetrevealError, match="is not empty and holds no earlier report"):
        check_output_folder(tmp_path / "mine", "index.html", "report")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NetrevealError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "file", "study.json", "export")
    with pytest.raises(NetrevealError, match="does not exist"):
        check_output_folder(tmp_path / "no" / "out", "study.json", "export")
