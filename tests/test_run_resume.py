"""A real ``netreveal evaluate`` / ``explain`` killed with SIGKILL after its first shards resumes
with ``--resume`` and ends with the numbers of an uninterrupted run; a resume with other
parameters, or a new run over an unfinished one, is refused with one line."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_checks import fails_with_one_line, same_threads_env

from netreveal.cli import main
from netreveal.data.partsworld import PartsWorld
from netreveal.results import load

SHARDS = 16  # 16 images, one per shard
TIMING = "s / image"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=2, split="test")
    return root


def _killed_after_shards(argv: list[str], manifest: Path, shards: int = 2) -> None:
    """Run ``netreveal argv`` in a subprocess and SIGKILL it once ``shards`` shards are in its manifest."""
    proc = subprocess.Popen([sys.executable, "-m", "netreveal.cli", *argv],
                            env=same_threads_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "no shard was done in time"
            try:
                done = len(json.loads(manifest.read_text())["done"])
            except (OSError, ValueError):
                done = 0
            if done >= shards:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 0 < len(json.loads(manifest.read_text())["done"]) < SHARDS


def _table(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k != TIMING} for row in csv.DictReader(fh)]


def _stamps(run: Path) -> dict[str, int]:
    return {p.name: (p / "shard.json").stat().st_mtime_ns for p in sorted((run / "shards").iterdir())}


def test_a_killed_evaluate_resumes_to_the_table_of_an_uninterrupted_run(tmp_path, folder, capsys):
    args = ["evaluate", "--images", str(folder), "--method", "gradcam,rise", "--rise-masks", "200", "--steps", "8",
            "--shard-size", "1", "--loader-workers", "0", "--quiet"]
    killed = tmp_path / "killed.csv"
    _killed_after_shards([*args, "--csv", str(killed)], tmp_path / "killed-run" / "manifest.json")
    done_before = {f"{int(k):05d}" for k in json.loads((tmp_path / "killed-run" / "manifest.json").read_text())["done"]}
    stamps = _stamps(tmp_path / "killed-run")
    assert not killed.exists()
    fails_with_one_line(capsys, [*args, "--csv", str(killed)], "holds an unfinished evaluation run; pass --resume")
    fails_with_one_line(capsys, [*args, "--shard-size", "2", "--csv", str(killed), "--resume"],
                        "it was started with other parameters (shard_size was 1, now 2); pass --force to start over")
    fails_with_one_line(capsys, [*args, "--rise-masks", "100", "--csv", str(killed), "--resume"],
                        "(methods[1].options.rise_masks was 200, now 100)")
    assert main([*args, "--csv", str(killed), "--resume"]) == 0
    after = _stamps(tmp_path / "killed-run")
    assert all(after[name] == stamps[name] for name in done_before), "a finished shard was done again"
    assert len(after) == SHARDS
    whole = tmp_path / "whole.csv"
    assert main([*args, "--csv", str(whole)]) == 0
    assert _table(killed) == _table(whole) and len(_table(whole)) == 2
    for a, b in zip(sorted((tmp_path / "killed-run" / "shards").iterdir()),
                    sorted((tmp_path / "whole-run" / "shards").iterdir())):
        assert (load(a / "rise.pt").maps == load(b / "rise.pt").maps).all(), a.name
    capsys.readouterr()
    assert main([*args, "--csv", str(whole)]) == 0  # a finished run is replaced, as the CSV is


def test_a_killed_explain_resumes_to_the_report_of_an_uninterrupted_run(tmp_path, folder, capsys):
    args = ["explain", "--model", "demo", "--images", str(folder), "--method", "gradcam,rise", "--rise-masks", "200",
            "--steps", "8", "--shard-size", "1", "--loader-workers", "0", "--quiet"]
    killed = tmp_path / "killed"
    _killed_after_shards([*args, "--out", str(killed)], killed / "manifest.json")
    assert not (killed / "index.html").exists()
    fails_with_one_line(capsys, [*args, "--out", str(killed)], "holds an unfinished explanation run; pass --resume")
    fails_with_one_line(capsys, [*args, "--target", "1", "--out", str(killed), "--resume"],
                        "(target was None, now 1)")
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main([*args, "--out", str(whole)]) == 0
    for name in ("images.csv", "metrics.csv"):
        assert (killed / "results" / name).read_text() == (whole / "results" / name).read_text(), name
    page, other = (killed / "index.html").read_text(), (whole / "index.html").read_text()
    assert page.count('class="image"') == SHARDS and other.count('class="image"') == SHARDS
    def cards(text: str) -> str:
        return text[text.index('<h2 id="images">'):text.index("<summary>Parameters and versions")]

    assert cards(page) == cards(other)  # every image card, its pictures' names and its metrics alike
    for src in re.findall(r'src="(img/[^"]+)"', page):
        assert (killed / src).read_bytes() == (whole / src).read_bytes(), src
    for a, b in zip(sorted((killed / "shards").iterdir()), sorted((whole / "shards").iterdir())):
        assert (load(a / "rise.pt").maps == load(b / "rise.pt").maps).all(), a.name
    capsys.readouterr()
    assert main([*args, "--out", str(killed), "--resume"]) == 0  # finished: nothing to do
    assert capsys.readouterr().out.strip() == str((killed / "index.html").resolve())
    fails_with_one_line(capsys, [*args, "--out", str(killed)], "holds an earlier explanation report; pass --force")
