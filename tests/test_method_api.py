"""The method interface around the methods: flags generated from options, report sections chosen by
result type, the tables methods add to an evaluation, and ground truth behind a loader."""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netreveal
from netreveal import pipeline
from netreveal.cli import main
from netreveal.csvtable import Table
from netreveal.data.groundtruth import Truth, ground_truth_loader
from netreveal.data.partsworld import PartsWorld
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS, Method, MethodOptions, MethodRun, option
from netreveal.methods.flags import add_method_flags, flags, method_values
from netreveal.model.adapter import load_model
from netreveal.report.sections import renderer_for
from netreveal.results import AttributionResult

SRC = Path(netreveal.__file__).parent


def _parse(*argv: str, lists: bool = False):
    parser = argparse.ArgumentParser()
    add_method_flags(parser)
    return method_values(parser.parse_args(list(argv)), lists=lists)


def test_flags_come_from_the_options_with_their_types_and_checks():
    values, sweeps = _parse("--layer", "features.block4.conv1", "--grid", "3", "--smooth-noise", "0.3",
                            "--mask-size", "7,14", lists=True)
    assert values["layer"] == "features.block4.conv1" and values["grid"] == 3 and values["smooth_noise"] == 0.3
    assert values["mask_size"] == 7 and sweeps == {"mask_size": [7, 14]}
    assert values["head"] is None and values["batch_size"] == 16
    run = METHODS["gradcam++"].configure(values)
    assert dataclasses.asdict(run.options) == {"batch_size": 16, "seed": 0, "progress": True,
                                               "layer": "features.block4.conv1"}
    with pytest.raises(NetrevealError, match="--grid must be at least 1"):
        _parse("--grid", "0")
    with pytest.raises(NetrevealError, match="--batch-size must be at least 1"):
        _parse("--batch-size", "0")
    with pytest.raises(NetrevealError, match="--mask-size takes one size here"):
        _parse("--mask-size", "7,14")
    with pytest.raises(SystemExit):
        _parse("--baseline", "white")
    with pytest.raises(TypeError, match="has no setting 'grid'"):
        METHODS["gradcam"].options(grid=3)


def test_a_setting_declared_twice_differently_is_refused():
    @dataclasses.dataclass
    class Clashing(MethodOptions):
        layer: str = option("last:2", "another layer")

    class Clash(Method):
        name, title, Options = "clash", "Clash", Clashing

    with pytest.raises(TypeError, match="option 'layer' of clash differs"):
        flags({**METHODS, "clash": Clash()})


def test_building_the_parser_imports_no_model_code():
    code = ("import sys; from netreveal.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules, 'netreveal.methods' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_sections_are_chosen_by_result_type():
    from netreveal.attribution.igos import IgosResult
    from netreveal.report.sections.heatmap import heatmap_sections
    from netreveal.report.sections.igos import igos_sections

    fields = {"method": "x", "maps": torch.zeros(1, 4, 4), "targets": torch.zeros(1, dtype=torch.long),
              "target_probs": torch.ones(1), "params": {}, "provenance": {}}
    assert renderer_for(AttributionResult(**fields)) is heatmap_sections
    assert renderer_for(IgosResult(**fields)) is igos_sections
    with pytest.raises(TypeError, match="no report section renders a dict"):
        renderer_for({})


def test_methods_build_no_html():
    for path in sorted((SRC / "methods").glob("*.py")):
        text = path.read_text()
        assert "<div" not in text and "<svg" not in text and "add_section(" not in text, path.name
        assert not any(name.startswith("netreveal.report") for name in _imports(path)), path.name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_pipeline_knows_no_dataset_and_no_method_by_name():
    imports = _imports(SRC / "pipeline.py")
    assert not any("partsworld" in name for name in imports)
    cli = (SRC / "cli" / "explain.py").read_text()
    body = cli[cli.index("def cmd_evaluate"):]
    assert '"sag"' not in body and '"inv"' not in body


class _Counting(Method):
    """A method of this test only (not registered): a heatmap and a table of its own."""

    name, title = "counting", "Counting"

    def run(self, adapter, images, targets, options):
        with torch.no_grad():
            probs = adapter.model(images).softmax(1)
        return AttributionResult("counting", torch.rand(len(images), *images.shape[-2:]), targets,
                                 probs.gather(1, targets[:, None])[:, 0], {}, {})

    def extra_evaluations(self, evaluation, result, seconds, options):
        return [Table("counted", ["images", "steps"], [[len(result.maps), evaluation.steps]], "counted")]


def test_evaluation_collects_the_tables_methods_add(tmp_path):
    adapter = load_model("demo")
    from netreveal.data.partsworld_truth import partsworld_inputs

    inputs = partsworld_inputs(adapter, 2)
    runs = [MethodRun(_Counting(), MethodOptions(progress=False)), METHODS["gradcam"].configure(progress=False)]
    _, rows, done = pipeline.evaluate(adapter, inputs, runs, MethodOptions(progress=False), steps=3)
    assert [row[0] for row in rows] == ["counting", "gradcam"]
    tables = pipeline.extra_evaluations(adapter, inputs, done.values(), steps=3)
    assert [(t.title, t.rows) for t in tables] == [("counted", [[2, 3]])]


def test_evaluate_prints_the_sag_and_inv_tables(tmp_path, capsys):
    path = tmp_path / "e.csv"
    assert main(["evaluate", "--n", "2", "--method", "sag,inv", "--steps", "3", "--grid", "2",
                 "--sag-saliency-iterations", "1", "--sag-saliency-steps", "2", "--layers", "last:2",
                 "--csv", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Structured Attention Graphs (2x2 soft patches, black baseline, reference variant)" in out
    assert "INV per layer" in out
    sag = list(csv.DictReader(path.with_name("e-sag.csv").open()))
    assert sag[0]["images"] == "2"
    layers = list(csv.DictReader(path.with_name("e-inv-layers.csv").open()))
    assert [row["layer"] for row in layers] == ["features.block4.conv2", "features.block4.conv3"]


class _Marked:
    """A ground-truth loader of this test: the top-left quarter of every image is the evidence."""

    name = "marked"

    def load(self, path, class_name, size):
        evidence = torch.zeros(size, size, dtype=torch.bool)
        evidence[: size // 2, : size // 2] = True
        return Truth(parts=evidence[None], part_names=["corner"], evidence=evidence)


@pytest.fixture(scope="module")
def parts_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=1, split="test")
    return root


def test_ground_truth_comes_from_the_loader_the_caller_chooses(parts_folder):
    adapter = load_model("demo")
    parts = pipeline.read_folder(adapter, parts_folder, limit=2)
    assert all(m is not None for m in parts.masks) and all(p.shape[0] > 0 for p in parts.part_masks)
    none = pipeline.read_folder(adapter, parts_folder, limit=2, ground_truth="none")
    assert none.masks == [None, None] and none.part_masks == [None, None]
    marked = pipeline.read_folder(adapter, parts_folder, limit=2, ground_truth=_Marked())
    assert bool(marked.masks[0][:32, :32].all()) and not bool(marked.masks[0][32:].any())
    with pytest.raises(NetrevealError, match="unknown ground truth 'coco'"):
        ground_truth_loader("coco")


def test_explain_without_ground_truth_has_no_pointing_game(tmp_path, parts_folder):
    out = tmp_path / "rep"
    assert main(["explain", "--images", str(parts_folder), "--limit", "2", "--method", "layercam",
                 "--ground-truth", "none", "--steps", "3", "--out", str(out), "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert "LayerCAM" in page and "pointing hit" not in page
