"""The Ray engine on a local Ray started once for this module: it gives what the local engine gives
on a real workload (the demo model, Grad-CAM and RISE over shards of parts-world images), loads the
model once per worker, reports every item once and raises a worker's error in the caller."""

from __future__ import annotations

import functools
import os
import sys
import time

import pytest
import torch

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # each map starts its worker processes (a few seconds)

from netreveal.data.partsworld import PartsWorld  # noqa: E402
from netreveal.engines import LocalEngine, ModelSpec, assigned_device, get_engine  # noqa: E402
from netreveal.engines.ray_engine import RayEngine  # noqa: E402
from netreveal.errors import NetrevealError  # noqa: E402
from netreveal.methods import METHODS  # noqa: E402

SHARD = 3
SETUPS: dict[int, int] = {}  # process id -> how many times setup ran in that process


def load_worker() -> dict:
    """The worker state: the demo model, and which process built it how many times."""
    torch.set_num_threads(1)  # as the calling process (conftest), so results match bit for bit
    pid = os.getpid()
    SETUPS[pid] = SETUPS.get(pid, 0) + 1
    return {"adapter": ModelSpec().load(), "pid": pid, "setup": SETUPS[pid], "device": assigned_device()}


def explain_shard(state: dict, item: tuple[torch.Tensor, int]) -> dict:
    """Grad-CAM and RISE (seeded by the item) maps of one shard, and who computed them."""
    images, seed = item
    adapter = state["adapter"]
    with torch.no_grad():
        targets = adapter.model(images).argmax(dim=1)
    maps = {}
    for name, settings in (("gradcam", {}), ("rise", {"rise_masks": 48})):
        options = METHODS[name].options({**settings, "seed": seed, "batch_size": SHARD, "progress": False})
        maps[name] = METHODS[name].run(adapter, images, targets, options).maps
    return {"maps": maps, "pid": state["pid"], "setup": state["setup"], "device": state["device"]}


def worker_pid() -> dict:
    """A state that loads nothing (for the tests of errors)."""
    return {"pid": os.getpid()}


def fail_on(seed: int, error: type[Exception], state: dict, item: tuple[torch.Tensor, int]) -> dict:
    if item[1] == seed:
        raise error(f"shard {seed} cannot be explained:\nits images are broken")
    return {"pid": state["pid"]}


def broken_setup() -> dict:
    raise NetrevealError("weights file missing.pt does not exist")


@pytest.fixture(scope="module")
def session():
    """One local Ray for the module, started (and stopped) by the engine itself. Workers cannot
    import this test module, so its functions travel by value."""
    assert not ray.is_initialized()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    engine = RayEngine(workers=2)
    try:
        with engine:
            assert ray.is_initialized()
            yield engine
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert not ray.is_initialized()  # the engine started it, so the engine shut it down


@pytest.fixture(scope="module")
def shards() -> list[tuple[torch.Tensor, int]]:
    images, _, _ = PartsWorld(size=64, split="test").batch(range(5 * SHARD))
    return [(images[i:i + SHARD], 100 + i) for i in range(0, len(images), SHARD)]


def all_cpus_free(timeout: float = 60.0) -> bool:
    """Whether every actor let go of its CPU within ``timeout`` seconds (killing is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]:
            return True
        time.sleep(0.2)
    return False


def collect(engine, setup, work, items) -> dict[int, object]:
    got: dict[int, object] = {}

    def on_result(index: int, outcome: object) -> None:
        assert index not in got, f"item {index} reported twice"
        got[index] = outcome

    engine.map(setup, work, items, on_result)
    return got


@pytest.fixture(scope="module")
def local_results(shards):
    return collect(LocalEngine(), load_worker, explain_shard, shards)


def test_two_workers_give_the_local_engines_maps(session, shards, local_results):
    got = collect(session, load_worker, explain_shard, shards)
    assert sorted(got) == list(range(len(shards)))  # every item reported once
    for index, outcome in got.items():
        for name, maps in outcome["maps"].items():
            assert maps.shape == (SHARD, 64, 64)
            torch.testing.assert_close(maps, local_results[index]["maps"][name], rtol=0, atol=0,
                                       msg=f"shard {index} {name}")
    pids = {outcome["pid"] for outcome in got.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers, neither of them this process
    assert {outcome["setup"] for outcome in got.values()} == {1}  # each worker loaded the model once
    assert {outcome["device"] for outcome in got.values()} == {None}  # no GPU here: the model on CPU
    assert ray.is_initialized()  # the session outlives one map


def test_one_worker_does_every_item_with_one_setup(session, shards, local_results):
    got = collect(RayEngine(workers=1), load_worker, explain_shard, shards)
    assert sorted(got) == list(range(len(shards)))
    assert len({outcome["pid"] for outcome in got.values()}) == 1
    assert {outcome["setup"] for outcome in got.values()} == {1}
    for index, outcome in got.items():
        torch.testing.assert_close(outcome["maps"]["rise"], local_results[index]["maps"]["rise"], rtol=0, atol=0)


def test_get_engine_builds_the_ray_engine(session):
    engine = get_engine("ray", workers=2)
    assert isinstance(engine, RayEngine) and engine.name == "ray" and engine.workers == 2
    assert RayEngine().workers == int(ray.cluster_resources()["CPU"])  # default: the CPUs Ray sees


def test_an_error_in_one_item_is_raised_in_the_caller(session, shards):
    reported = []
    with pytest.raises(ValueError, match="shard 106 cannot be explained") as raised:
        RayEngine(workers=1).map(worker_pid, functools.partial(fail_on, 106, ValueError), shards,
                                 lambda index, outcome: reported.append(index))
    assert raised.type is ValueError
    assert 2 not in reported and len(reported) < len(shards)
    assert all_cpus_free()


def test_a_netreveal_error_in_a_worker_is_one_line(session, shards):
    with pytest.raises(NetrevealError) as raised:
        RayEngine(workers=1).map(worker_pid, functools.partial(fail_on, 103, NetrevealError), shards,
                                 lambda *_: None)
    assert str(raised.value) == "shard 103 cannot be explained: its images are broken"


def test_an_error_in_setup_is_raised_in_the_caller(session, shards):
    with pytest.raises(NetrevealError, match="^weights file missing.pt does not exist$"):
        RayEngine(workers=1).map(broken_setup, explain_shard, shards, lambda *_: None)


def test_an_error_in_on_result_stops_the_map(session, shards):
    def on_result(index, outcome):
        raise KeyError("manifest is full")

    with pytest.raises(KeyError, match="manifest is full"):
        RayEngine(workers=2).map(worker_pid, functools.partial(fail_on, -1, ValueError), shards, on_result)
    assert all_cpus_free()  # the workers were stopped


def test_no_items_start_no_worker(session):
    def setup():
        raise AssertionError("setup ran without work")

    session.map(setup, explain_shard, [], lambda *_: None)


def test_workers_cannot_hold_gpus_the_cluster_lacks(session, shards):
    assert "GPU" not in ray.cluster_resources()  # this machine has none
    with pytest.raises(NetrevealError, match="^the Ray cluster has no GPU for the workers to hold$"):
        RayEngine(workers=1, gpus_per_worker=1).map(worker_pid, explain_shard, shards, lambda *_: None)


def test_bad_worker_counts_are_refused():
    with pytest.raises(NetrevealError, match="--workers must be at least 1"):
        get_engine("ray", workers=0)
