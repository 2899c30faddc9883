"""Output commands never replace what is not theirs, image keys never collide, and the command
line answers bad places, devices, limits, layers and ports with one line and exit code 2."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_checks import fails_with_one_line
from dbs import make_tiny_study
from PIL import Image

from netreveal.cli import main
from netreveal.data.partsworld import PartsWorld
from netreveal.fileio import (
    EXPLANATION_REPORT,
    LABEL_REPORT,
    MARKER,
    STUDY_EXPORT,
    USER_STUDY_REPORT,
    output_kind,
    write_marker,
)
from netreveal.results import load
from netreveal.store import open_store

QUICK = ["--method", "gradcam", "--quiet"]
ARTICLES = {EXPLANATION_REPORT: "an", LABEL_REPORT: "a", USER_STUDY_REPORT: "a", STUDY_EXPORT: "a"}


@pytest.fixture(scope="module")
def parts_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=1, split="test")
    return root


@pytest.fixture(scope="module")
def one_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("one") / "a.png"
    Image.effect_noise((64, 64), 40).convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    """SQLite files: an empty one, one with a reveal study 'tiny', one with an answered evaluation study 'ev'."""
    from evalstudy import answer_as_simulated, make_eval_study

    from netreveal.userstudy import simulate_study

    root = tmp_path_factory.mktemp("db")
    urls = {name: str(root / f"{name}.db") for name in ("empty", "tiny", "ev")}
    for name, url in urls.items():
        store = open_store(url)
        try:
            if name == "tiny":
                make_tiny_study(store, 2)
            elif name == "ev":
                made = make_eval_study(store)
                simulated = simulate_study(made["design"], 4, seed=made["seed"],
                                           informativeness={m: 3.0 for m in made["methods"]})
                answer_as_simulated(store, "ev", simulated)
        finally:
            store.close()
    return urls


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _commands(parts_folder: Path, one_image: Path, databases: dict) -> dict[str, tuple[list[str], str]]:
    """Per output command: argv without --out (each would succeed on a free folder) and its kind."""
    return {
        "explain": (["explain", "--model", "demo", "--images", str(one_image), *QUICK], EXPLANATION_REPORT),
        "demo": (["demo", "--images", "1", "--no-study", *QUICK], EXPLANATION_REPORT),
        "study analyse": (["study", "analyse", "--name", "ev", "--database-url", databases["ev"]], USER_STUDY_REPORT),
        "study export": (["study", "export", "--name", "tiny", "--database-url", databases["tiny"]], STUDY_EXPORT),
        "labels analyse": (["labels", "analyse", "--study", "nope", "--database-url", databases["empty"]],
                           LABEL_REPORT),
    }


def test_output_commands_refuse_what_is_not_an_earlier_output_of_their_kind(
        tmp_path, capsys, parts_folder, one_image, databases):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("three years of work")
    readme = tmp_path / "readme.md"
    readme.write_text("# my project")
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("an earlier output of another kind")
    before = {p: _snapshot(p) for p in (thesis, other)}
    for name, (argv, kind) in _commands(parts_folder, one_image, databases).items():
        write_marker(other, STUDY_EXPORT if kind != STUDY_EXPORT else EXPLANATION_REPORT)
        before[other] = _snapshot(other)
        other_kind = "a study export" if kind != STUDY_EXPORT else "an explanation report"
        for force in ([], ["--force"]):
            fails_with_one_line(capsys, [*argv, "--out", str(thesis), *force],
                                f"is not empty and holds no earlier {kind}; choose a new or empty folder")
            fails_with_one_line(capsys, [*argv, "--out", str(readme), *force], "exists and is not a folder")
            fails_with_one_line(capsys, [*argv, "--out", str(other), *force],
                                f"holds {other_kind}, not {ARTICLES[kind]} {kind}; choose another folder")
        assert _snapshot(thesis) == before[thesis] and _snapshot(other) == before[other], name
        assert readme.read_text() == "# my project", name
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "readme.md", "thesis"], name


def test_an_earlier_output_is_replaced_only_with_force(tmp_path, capsys, parts_folder, one_image, databases):
    for name, (argv, kind) in _commands(parts_folder, one_image, databases).items():
        if name == "labels analyse":
            continue  # its happy path needs labels and an embedding model: tests/test_label_report.py
        out = tmp_path / name.replace(" ", "-")
        assert main([*argv, "--out", str(out)]) == 0, name
        assert output_kind(out) == kind
        (out / "marker-of-the-first-run").write_text("1")
        first = _snapshot(out)
        capsys.readouterr()
        fails_with_one_line(capsys, [*argv, "--out", str(out)], f"holds an earlier {kind}; pass --force to replace it")
        assert _snapshot(out) == first, name
        assert main([*argv, "--out", str(out), "--force"]) == 0, name
        assert not (out / "marker-of-the-first-run").exists() and output_kind(out) == kind, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "explain", "study-analyse", "study-export"]


def test_labels_analyse_force_passes_the_output_check(tmp_path, capsys, databases):
    out = tmp_path / "labels"
    out.mkdir()
    write_marker(out, LABEL_REPORT)
    (out / "index.html").write_text("earlier")
    db = ["--database-url", databases["empty"]]
    fails_with_one_line(capsys, ["labels", "analyse", "--study", "nope", "--out", str(out), *db], "pass --force")
    fails_with_one_line(capsys, ["labels", "analyse", "--study", "nope", "--out", str(out), "--force", *db],
                        "unknown study 'nope'")
    assert (out / "index.html").read_text() == "earlier"


# -- image keys -------------------------------------------------------------------------------


@pytest.fixture
def same_stems(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for path, colour in ((root / "cat.png", (200, 30, 30)), (root / "cat.jpg", (30, 200, 30)),
                         (root / "sub" / "cat.png", (30, 30, 200))):
        Image.new("RGB", (64, 64), colour).save(path)
    return root


KEYS = ["cat.jpg", "cat.png", "sub/cat.png"]


def test_images_with_one_stem_keep_their_own_cards_results_and_rows(tmp_path, same_stems):
    out = tmp_path / "report"
    assert main(["explain", "--model", "demo", "--images", str(same_stems), "--out", str(out), *QUICK]) == 0
    page = (out / "index.html").read_text()
    assert page.count('class="image"') == 3
    for key in KEYS:
        assert f"<h2>{key}</h2>" in page
    with open(out / "results" / "images.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["key"] for r in rows] == KEYS and [r["index"] for r in rows] == ["0", "1", "2"]
    assert load(out / "results" / "gradcam.pt").maps.shape[0] == 3


def test_a_study_keeps_images_with_one_stem_apart(tmp_path, same_stems, capsys):
    db = ["--database-url", str(tmp_path / "s.db")]
    assert main(["study", "create", "--name", "cats", "--images", str(same_stems), "--layers", "last:1",
                 "--quiet", *db]) == 0
    assert main(["study", "export", "--name", "cats", "--out", str(tmp_path / "export"), *db]) == 0
    with open(tmp_path / "export" / "images.csv", newline="") as fh:
        assert sorted(r["key"] for r in csv.DictReader(fh)) == KEYS
    doc = json.loads((tmp_path / "export" / "study.json").read_text())
    assert sorted(i["key"] for i in doc["images"]) == KEYS


# -- one line, exit 2 -------------------------------------------------------------------------


def test_an_unwritable_output_place_is_one_line(tmp_path, capsys, one_image, databases):
    fails_with_one_line(capsys, ["explain", "--model", "demo", "--images", str(one_image), "--out", "/proc/x/report",
                                 *QUICK], "cannot write output /proc/x/report")
    fails_with_one_line(capsys, ["demo", "--images", "1", "--no-study", "--out", "/proc/x/report", *QUICK],
                        "cannot write output /proc/x/report")
    fails_with_one_line(capsys, ["study", "export", "--name", "tiny", "--out", "/proc/x/report",
                                 "--database-url", databases["tiny"]], "cannot write output /proc/x/report")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    fails_with_one_line(capsys, ["explain", "--model", "demo", "--images", str(one_image), "--out",
                                 str(blocker / "report"), *QUICK], "cannot write output")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("device, message", [
    ("cuda", "device 'cuda' is not available"),
    ("cuda:1", "device 'cuda:1' is not available"),
    ("bogus", "unknown device 'bogus'"),
    ("meta", "device 'meta'"),
])
def test_an_unusable_device_is_one_line(tmp_path, capsys, one_image, device, message, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    fails_with_one_line(capsys, ["explain", "--model", "demo", "--images", str(one_image), "--device", device,
                                 "--out", str(tmp_path / "out"), *QUICK], message)
    assert not list(tmp_path.iterdir())


def test_a_limit_below_one_is_one_line(tmp_path, capsys, parts_folder):
    for limit in ("0", "-1"):
        fails_with_one_line(capsys, ["explain", "--model", "demo", "--images", str(parts_folder), "--limit", limit,
                                     "--out", str(tmp_path / "out"), *QUICK], "--limit must be at least 1")
        fails_with_one_line(capsys, ["evaluate", "--images", str(parts_folder), "--limit", limit,
                                     "--csv", str(tmp_path / "e.csv"), *QUICK], "--limit must be at least 1")
        fails_with_one_line(capsys, ["study", "create", "--name", "x", "--images", str(parts_folder), "--limit", limit,
                                     "--database-url", str(tmp_path / "s.db"), "--quiet"], "--limit must be at least 1")
    assert not (tmp_path / "out").exists() and not (tmp_path / "e.csv").exists()


def test_a_vit_block_without_patch_gradient_for_gradcam_is_one_line(tmp_path, capsys):
    """Transformer blocks are feature grids now, but the last block of a class-token ViT gives the
    class score no gradient on its patch tokens (and a fresh torchvision ViT's head is zero)."""
    image = tmp_path / "a.png"
    Image.effect_noise((224, 224), 40).convert("RGB").save(image)
    out = tmp_path / "out"
    fails_with_one_line(capsys, ["explain", "--model", "vit_b_16", "--images", str(image), "--layer",
                                 "encoder.layers.encoder_layer_11", "--out", str(out), *QUICK],
                        "the class score has no gradient on the patch tokens of layer "
                        "'encoder.layers.encoder_layer_11' (the last block of a class-token ViT, or a zero head); "
                        "Grad-CAM needs a layer they reach, e.g. auto:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_serve_on_a_busy_port_is_one_line(tmp_path, capsys, databases):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fails_with_one_line(capsys, ["serve", "--database-url", databases["tiny"], "--port", str(port)],
                            f"cannot listen on 127.0.0.1:{port}: the port is in use")
    fails_with_one_line(capsys, ["serve", "--database-url", databases["tiny"], "--port", "70000"], "--port")


# -- what a killed run leaves behind ----------------------------------------------------------


def test_the_next_run_removes_the_staging_folder_of_a_killed_report_run(tmp_path, one_image, capsys):
    out = tmp_path / "report"
    mine = [tmp_path / ".netreveal-notes", tmp_path / ".report.old", tmp_path / "thesis"]
    for folder in mine:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    slow = subprocess.Popen([sys.executable, "-m", "netreveal.cli", "explain", "--model", "demo", "--images",
                             str(one_image), "--method", "igos++", "--mask-size", "224", "--quiet", "--out", str(out)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (stages := list(tmp_path.glob(".netreveal-report-*"))):
            assert slow.poll() is None and time.monotonic() < deadline, "the run ended before it wrote anything"
            time.sleep(0.05)
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    assert len(stages) == 1 and stages[0].is_dir() and not out.exists()
    assert main(["explain", "--model", "demo", "--images", str(one_image), "--out", str(out), *QUICK]) == 0
    assert not stages[0].exists() and (out / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report", *(p.name for p in mine)])
    assert all((p / "keep.txt").read_text() == "mine" for p in mine)
    assert MARKER in os.listdir(out)
