"""The command line end to end in a temporary folder, and every kind of bad input."""

import csv
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from netreveal.cli import main
from netreveal.data.partsworld import PartsWorld
from netreveal.fileio import EXPLANATION_REPORT, MARKER, write_marker
from netreveal.results import load


@pytest.fixture(scope="module")
def parts_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=1, split="test")
    return root


def run_cli(*args):
    """Run the installed entry point in a subprocess: exit code, stdout, stderr."""
    proc = subprocess.run([sys.executable, "-m", "netreveal.cli", *args], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_demo_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    db = tmp_path / "demo.db"
    assert main(["demo", "--out", str(out), "--images", "1", "--quiet", "--database-url", str(db)]) == 0  # every method
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-3]) == (out / "index.html").resolve()
    assert printed[-2].startswith("study 'demo' stored in")
    assert printed[-1].startswith("demo finished in ")
    page = (out / "index.html").read_text()
    assert page.count('class="image"') == 1
    for title in ["Grad-CAM", "INV: layer-wise", "I-GOS", "iGOS++", "Structured Attention Graph", "InfoDisent", "XNN"]:
        assert title in page, title
    for src in __import__("re").findall(r'src="(img/[^"]+)"', page):
        assert (out / src).is_file()
    assert load(out / "results" / "gradcam.pt").maps.shape == (1, 64, 64)
    inv = load(out / "results" / "inv.pt")
    assert len(inv.images[0].layers) == 9
    assert not list(tmp_path.glob(".netreveal-report-*")), "staging folder left behind"
    from netreveal.store import open_store
    from netreveal.store.models import Item
    from netreveal.store.studies import study_labels

    store = open_store(db)
    with store.session() as s:  # the study holds one item per INV cluster of the demo image
        assert s.query(Item).count() == sum(len(layer.clusters) for layer in inv.images[0].layers)
    assert study_labels(store, "demo") == []


def test_explain_folder_end_to_end(tmp_path, parts_folder):
    out = tmp_path / "ex"
    code = main(["explain", "--model", "demo", "--images", str(parts_folder), "--method", "gradcam",
                 "--layer", "features.block4.conv3", "--out", str(out), "--quiet"])
    assert code == 0
    result = load(out / "results" / "gradcam.pt")
    assert result.params["layer"] == "features.block4.conv3"
    assert len(result) == len(PartsWorld().class_names)
    page = (out / "index.html").read_text()
    assert '<td class="name">pointing game ↑</td>' in page  # ground truth read from the parts-world folder
    assert "Model accuracy on these images" in page
    assert "<td>cart</td><td class=\"parts\">wheel + stripes</td>" in page  # the loader's class definitions
    assert page.count('alt="ground truth of ') == len(PartsWorld().class_names)


def test_a_folder_without_ground_truth_gets_no_class_table(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.effect_noise((64, 64), 40).convert("RGB").save(photos / "noise.png")  # no parts-world metadata beside it
    out = tmp_path / "ex"
    assert main(["explain", "--model", "demo", "--images", str(photos), "--method", "gradcam", "--out", str(out),
                 "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert 'id="classes"' not in page and "wheel + stripes" not in page
    assert "ground truth of" not in page


def test_evaluate_prints_table_and_writes_csv(tmp_path, capsys):
    path = tmp_path / "scores.csv"
    assert main(["evaluate", "--n", "6", "--steps", "10", "--csv", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "gradcam" in out and "deletion AUC" in out
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["method"] == "gradcam"
    assert 0.0 <= float(rows[0]["deletion AUC ↓"]) <= 1.0
    assert 0.0 <= float(rows[0]["pointing game ↑"]) <= 1.0


def _bad_inputs(tmp: Path, parts_folder: Path):
    notimg = tmp / "notimg"
    notimg.mkdir()
    (notimg / "a.png").write_text("not really a png")
    trunc = tmp / "trunc"
    trunc.mkdir()
    Image.effect_noise((64, 64), 40).convert("RGB").save(trunc / "t.png")
    data = (trunc / "t.png").read_bytes()
    (trunc / "t.png").write_bytes(data[: len(data) // 2])
    bomb = tmp / "bomb"
    bomb.mkdir()
    Image.new("1", (9000, 6000)).save(bomb / "b.png")
    empty = tmp / "empty"
    empty.mkdir()
    badckpt = tmp / "bad.pt"
    badckpt.write_bytes(b"garbage")
    good = str(parts_folder)
    return {
        "missing path": (["--images", str(tmp / "nope")], "path not found"),
        "non-image": (["--images", str(notimg)], "not an image file"),
        "truncated": (["--images", str(trunc)], "truncated or corrupt"),
        "bomb": (["--images", str(bomb)], "image too large"),
        "bad model": (["--images", good, "--model", "resnet18", "--weights", str(badckpt)], "not a checkpoint"),
        "unknown model": (["--images", good, "--model", "resnet5000"], "unknown model"),
        "unknown layer": (["--images", good, "--layer", "features.block9.conv1"], "unknown layer"),
        "class out of range": (["--images", good, "--target", "99"], "out of range"),
        "empty folder": (["--images", str(empty)], "no images found"),
        "unknown method": (["--images", good, "--method", "nope"], "unknown method"),
    }


def _earlier_report(out: Path) -> Path:
    """A folder holding an earlier report that ``--force`` would replace."""
    out.mkdir()
    write_marker(out, EXPLANATION_REPORT)
    (out / "keep.txt").write_text("earlier work")
    return out


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, parts_folder):
    # each case is its own process (most of its time is importing torch), two at a time, each
    # with its own earlier report: bad input leaves it as it was
    cases = _bad_inputs(tmp_path, parts_folder)
    outs = {name: _earlier_report(tmp_path / f"out{i}") for i, name in enumerate(cases)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(run_cli, "explain", "--out", str(outs[name]), "--force", "--quiet", *args)
                for name, (args, _) in cases.items()}
    for name, (_, message) in cases.items():
        code, _, stderr = runs[name].result()
        out = outs[name]
        assert code == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("netreveal: error:"), (name, stderr)
        assert message in lines[0], (name, lines[0])
        assert "Traceback" not in stderr
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt", MARKER], name
    assert not list(tmp_path.glob(".netreveal-*"))
