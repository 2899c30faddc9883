"""The contract every registered method keeps, checked on the demo model with small settings:
per-image targets are honoured, the batch size does not change the result, results save and load,
a seed makes a run repeatable, and an error inside the model leaves no hook behind and restores
``model.training`` and every ``requires_grad``. A new method file is covered without touching this
test (it iterates over the registry)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from netreveal import results
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.methods import METHODS, Explanation, MethodOptions
from netreveal.methods.flags import flags
from netreveal.model.adapter import load_model

NAMES = sorted(METHODS)
# Small settings for every method that has a cost knob (unknown names are ignored by each method).
SMALL = {
    "ig_steps": 4,
    "mask_size": 4,
    "igos_iterations": 1,
    "igos_steps": 2,
    "grid": 2,
    "sag_saliency_iterations": 1,
    "sag_saliency_steps": 2,
    "layers": "last:2",
    "occlusion_window": 16,
    "occlusion_stride": 16,
    "samples": 16,
    "segments": 8,
    "rise_masks": 32,
    "smooth_samples": 2,
    "progress": False,
}
IGNORED = {"provenance", "stats", "batch_size"}  # time stamps, timings, and the setting we vary


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def images(demo):
    return partsworld_inputs(demo, 3).images


@pytest.fixture(scope="module")
def targets(demo, images):
    """One class per image that is not the predicted one, so honouring them is visible."""
    with torch.no_grad():
        predicted = demo.model(images).argmax(dim=1)
    return (predicted + 1) % len(demo.class_names)


def run(name, adapter, images, targets, batch_size: int, seed: int = 0, check: bool = True):
    method = METHODS[name]
    options = method.options({**SMALL, "batch_size": batch_size, "seed": seed})
    if check:
        method.check(adapter, images[:1], options)
    return method.run(adapter, images, targets, options)


@pytest.fixture(scope="module")
def outcomes(demo, images, targets):
    """Per method, lazily: runs with batch size 1, 3 and 3 again."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = tuple(run(name, demo, images, targets, b) for b in (1, 3, 3))
        return cache[name]

    return get


def same(a, b, *, atol: float, where: str = "result") -> None:
    """Two saved forms (see netreveal.results) agree: tensors within ``atol``, the rest equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            if key not in IGNORED:
                same(a[key], b[key], atol=atol, where=f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, atol=atol, where=f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        torch.testing.assert_close(a, b, atol=atol, rtol=0 if atol == 0 else 1e-4, equal_nan=True, msg=where)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), where
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=atol, rel=0 if atol == 0 else 1e-4), where
    else:
        assert a == b, where


@pytest.mark.parametrize("name", NAMES)
def test_per_image_targets_are_honoured(name, outcomes, targets):
    for result in outcomes(name):
        assert isinstance(result, Explanation)
        assert result.targets.tolist() == targets.tolist()
        assert result.target_probs.shape == (3,)


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_does_not_change_the_result(name, outcomes):
    one, three, _ = outcomes(name)
    method = METHODS[name]
    if method.heatmaps is not None:
        maps = method.heatmaps(three)
        assert maps.shape == (3, 64, 64) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    same(results._encode(method.batch_invariants(one)), results._encode(method.batch_invariants(three)), atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_result_saves_and_loads(name, outcomes, tmp_path):
    result = outcomes(name)[1]
    back = results.load(results.save(result, tmp_path / "result.pt"))
    assert type(back) is type(result)
    same(results._encode(back), results._encode(result), atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_seed_makes_a_run_repeatable(name, outcomes):
    _, first, again = outcomes(name)
    same(results._encode(first), results._encode(again), atol=0)


class Injected(RuntimeError):
    pass


def _hook_counts(model: torch.nn.Module) -> list[int]:
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return [len(getattr(m, kind, {})) for m in model.modules() for kind in kinds]


@pytest.mark.parametrize("name", NAMES)
def test_an_error_inside_the_model_restores_its_state(name, images, targets):
    adapter = load_model("demo")  # its own model: this test changes its state
    METHODS[name].check(adapter, images[:1], METHODS[name].options(SMALL))
    model = adapter.model
    model.train()
    model.features.block1.conv1.weight.requires_grad_(False)
    flags_before = [p.requires_grad for p in model.parameters()]
    modes_before = [m.training for m in model.modules()]
    hooks_before = _hook_counts(model)
    globals_before = len(torch.nn.modules.module._global_forward_hooks)
    layer = model.features.block3.conv1
    calls = {"n": 0}
    original = layer.forward

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Injected("fails inside the model")
        return original(x)

    layer.forward = failing
    try:
        with pytest.raises(Injected):
            run(name, adapter, images, targets, batch_size=1, check=False)
    finally:
        del layer.forward
    assert calls["n"] == 2
    assert [m.training for m in model.modules()] == modes_before
    assert [p.requires_grad for p in model.parameters()] == flags_before
    assert _hook_counts(model) == hooks_before
    assert len(torch.nn.modules.module._global_forward_hooks) == globals_before


def test_every_method_declares_typed_options_and_one_flag_per_setting():
    for name, method in METHODS.items():
        assert method.name == name and method.title
        assert issubclass(method.Options, MethodOptions) and dataclasses.is_dataclass(method.Options)
        method.options()  # the defaults are valid
    names = [flag.name for flag in flags()]  # raises if two methods declare a setting differently
    assert len(names) == len(set(names))
    assert {"batch_size", "seed", "layer", "layers", "baseline", "mask_size", "grid", "head", "xnn"} <= set(names)


def test_explain_help_lists_every_method():
    out = subprocess.run([sys.executable, "-m", "netreveal.cli", "explain", "--help"], capture_output=True,
                         text=True, check=True).stdout
    flat = " ".join(out.split())
    for name, method in METHODS.items():
        assert f"{name} ({method.title})" in flat
    assert "--smooth-base" in out and "--layer " in out and "--grid" in out
