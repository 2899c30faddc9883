"""Engine choice without Ray installed, and the device an engine assigns to a worker's model."""

from __future__ import annotations

import sys

import pytest

from netreveal.engines import LocalEngine, ModelSpec, get_engine
from netreveal.engines.base import assign_device, assigned_device
from netreveal.errors import NetrevealError


def test_the_ray_engine_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now fails as when it is not installed
    monkeypatch.delitem(sys.modules, "netreveal.engines.ray_engine", raising=False)
    with pytest.raises(NetrevealError) as raised:
        get_engine("ray", workers=2)
    assert str(raised.value) == "the ray engine needs the ray extra: pip install 'netreveal[ray]'"


def test_unknown_engines_are_refused():
    with pytest.raises(NetrevealError, match="unknown engine 'spark': choose one of local, ray"):
        get_engine("spark")
    assert isinstance(get_engine("local"), LocalEngine)


@pytest.fixture
def assigned():
    yield assign_device
    assign_device(None)


def test_a_model_goes_to_the_device_the_engine_assigned(assigned):
    assert assigned_device() is None
    assigned("cpu")  # e.g. "cuda" on a GPU worker; the spec's own device is then not used
    adapter = ModelSpec(device="no-such-device").load()
    assert next(adapter.model.parameters()).device.type == "cpu"
    assigned(None)
    with pytest.raises(NetrevealError):
        ModelSpec(device="no-such-device").load()
