"""``evaluate --engine ray`` with two local Ray workers gives the local engine's numbers, shard by
shard, in the same run-folder layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from netreveal import results as result_io  # noqa: E402
from netreveal.cli import main  # noqa: E402

ARGS = ["evaluate", "--model", "demo", "--n", "6", "--shard-size", "3", "--method", "gradcam,rise",
        "--rise-masks", "32", "--steps", "4", "--quiet", "--loader-workers", "0"]


def _rows(path: Path) -> list[list[str]]:
    """The CSV's rows without the wall-time column."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    drop = rows[0].index("s / image") if "s / image" in rows[0] else None
    return [[c for i, c in enumerate(r) if i != drop] for r in rows]


def test_ray_engine_matches_the_local_engine(tmp_path):
    assert main([*ARGS, "--csv", str(tmp_path / "local.csv")]) == 0
    assert main([*ARGS, "--csv", str(tmp_path / "ray.csv"), "--engine", "ray", "--workers", "2"]) == 0
    assert _rows(tmp_path / "ray.csv") == _rows(tmp_path / "local.csv")
    local, ray = tmp_path / "local-run" / "shards", tmp_path / "ray-run" / "shards"
    assert sorted(p.name for p in ray.iterdir()) == sorted(p.name for p in local.iterdir()) == ["00000", "00001"]
    for shard in ("00000", "00001"):
        assert _rows(ray / shard / "metrics.csv") == _rows(local / shard / "metrics.csv")
        for name in ("gradcam.pt", "rise.pt"):
            a, b = result_io.load(local / shard / name), result_io.load(ray / shard / name)
            assert torch.equal(a.maps, b.maps)
