"""The result file format: round trip, safety, clear errors."""

import dataclasses

import pytest
import torch

from netreveal import results
from netreveal.errors import NetrevealError
from netreveal.results import AttributionResult


@results.register
@dataclasses.dataclass
class _Inner:
    values: torch.Tensor
    name: str


@results.register
@dataclasses.dataclass
class _Outer:
    items: list
    meta: dict


def test_attribution_result_round_trip(tmp_path):
    res = AttributionResult("gradcam", torch.rand(2, 8, 8), torch.tensor([1, 0]), torch.tensor([0.7, 0.2]),
                            {"layer": "x"}, {"seed": 3}, raw=torch.rand(2, 2, 2), extras={"loss": [1.0, 0.5]})
    path = results.save(res, tmp_path / "r.pt")
    back = results.load(path)
    assert isinstance(back, AttributionResult)
    assert torch.equal(back.maps, res.maps) and torch.equal(back.raw, res.raw)
    assert back.params == {"layer": "x"} and back.extras == {"loss": [1.0, 0.5]}


def test_nested_dataclasses_round_trip(tmp_path):
    obj = _Outer(items=[_Inner(torch.arange(3), "a"), _Inner(torch.ones(2), "b")], meta={"k": (1, 2)})
    back = results.load(results.save(obj, tmp_path / "o.pt"))
    assert back.items[1].name == "b" and torch.equal(back.items[0].values, torch.arange(3))
    assert back.meta == {"k": [1, 2]}


def test_foreign_files_are_rejected(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(NetrevealError, match="not a netreveal result"):
        results.load(path)
    with pytest.raises(NetrevealError, match="not found"):
        results.load(tmp_path / "missing.pt")


def test_load_in_a_fresh_process_finds_the_result_type(tmp_path):
    import subprocess
    import sys

    from netreveal.metrics.perturbation import PerturbationScores

    scores = PerturbationScores(torch.tensor([0.2]), None, torch.zeros(1, 3), None, torch.linspace(0, 1, 3),
                                torch.tensor([1]), {"steps": 2}, {"seed": None})
    path = results.save(scores, tmp_path / "s.pt")
    code = f"from netreveal import results; print(type(results.load({str(path)!r})).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PerturbationScores"
