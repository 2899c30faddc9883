"""The evaluation table's bookkeeping: one row per mask size for mask methods, SAG statistics."""

from types import SimpleNamespace

import pytest

from netreveal.cli import main
from netreveal.methods import get_methods
from netreveal.pipeline import _variants
from netreveal.sag.statistics import sag_statistics


def test_mask_methods_get_one_run_per_size_and_full_resolution_is_clipped():
    igos_pp, gradcam = get_methods("igos++,gradcam")
    runs = _variants(igos_pp.configure(mask_size=28), {"mask_size": [7, 28, 224]}, (64, 64))
    assert [run.label for run in runs] == ["igos++ 7x7", "igos++ 28x28", "igos++ 64x64 (full)"]
    assert [run.options.mask_size for run in runs] == [7, 28, 64]
    plain = gradcam.configure()
    assert _variants(plain, {"mask_size": [7, 28]}, (64, 64)) == [plain]


def test_sag_statistics_against_hand_counts():
    graphs = [
        SimpleNamespace(roots=[[1, 2], [3, 4, 5]], forward_passes=100, saliency_forward_passes=20),
        SimpleNamespace(roots=[], forward_passes=60, saliency_forward_passes=20),
        SimpleNamespace(roots=[[9]], forward_passes=40, saliency_forward_passes=0),
    ]
    header, [row] = sag_statistics(graphs, seconds=6.0)
    stats = dict(zip(header, row))
    assert stats["images"] == 3
    assert stats["with a sufficient root"] == pytest.approx(2 / 3)
    assert stats["roots / image"] == pytest.approx(1.0)
    assert stats["root size (patches)"] == pytest.approx((2 + 3 + 1) / 3)
    assert stats["forward passes / image"] == pytest.approx(80.0)
    assert stats["s / image"] == pytest.approx(2.0)


@pytest.mark.parametrize("sizes", ["7,x", "0", ","])
def test_bad_mask_sizes_are_one_line_errors(sizes, tmp_path, capsys):
    code = main(["evaluate", "--n", "1", "--method", "igos++", "--mask-size", sizes, "--csv", str(tmp_path / "e.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("netreveal: error: --mask-size") and err.count("\n") == 1
    assert not (tmp_path / "e.csv").exists()


def test_explain_takes_a_single_mask_size(tmp_path, capsys):
    code = main(["explain", "--images", str(tmp_path), "--out", str(tmp_path / "out"), "--method", "igos++",
                 "--mask-size", "7,14"])
    assert code == 2 and "one size" in capsys.readouterr().err
