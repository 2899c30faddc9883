"""Runs over shards: one shard gives the numbers of the unsharded pipeline, shards are seeded from
the run seed and their index, and the engine protocol holds in worker processes (picklable setup
and work, results in any order, one manifest)."""

import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial

import pytest

from netreveal import pipeline
from netreveal.data.partsworld_truth import partsworld_inputs, partsworld_source
from netreveal.engines import LocalEngine, ModelSpec
from netreveal.methods import get_methods
from netreveal.model.adapter import load_model
from netreveal.runs import MethodSpec, RunPlan, evaluate_run, shard_seed
from netreveal.runs.shard_work import ShardJob, setup, work

TIMING = -1  # the last column: seconds per image


@pytest.fixture(scope="module")
def adapter():
    return load_model("demo")


def _plan(runs, n: int, shard_size: int, adapter) -> RunPlan:
    return RunPlan("evaluate", ModelSpec("demo"), tuple(MethodSpec.of(r) for r in runs), partsworld_source(adapter, n),
                   shard_size=shard_size, steps=6)


def test_one_shard_gives_the_numbers_of_the_unsharded_pipeline(tmp_path, adapter):
    values = {"progress": False, "rise_masks": 100, "grid": 3, "sag_saliency_iterations": 1, "sag_saliency_steps": 2}
    runs = [m.configure(values) for m in get_methods("gradcam,rise,sag")]
    header, rows, done = pipeline.evaluate(adapter, partsworld_inputs(adapter, 3), runs, steps=6)
    tables = pipeline.extra_evaluations(adapter, partsworld_inputs(adapter, 3), done.values(), steps=6)
    sharded_header, sharded, sharded_tables = evaluate_run(_plan(runs, 3, 8, adapter), tmp_path / "run",
                                                           LocalEngine(), progress=False)
    assert sharded_header == header
    assert [r[:TIMING] for r in sharded] == [r[:TIMING] for r in rows]
    assert [t.rows[0][:TIMING] for t in sharded_tables] == [t.rows[0][:TIMING] for t in tables]


def test_shards_draw_with_seeds_of_the_run_seed_and_their_index(adapter):
    assert shard_seed(7, 0) == 7 and shard_seed(7, 1) == shard_seed(7, 1) != shard_seed(8, 1)
    assert len({shard_seed(0, i) for i in range(1000)}) == 1000
    plan = _plan([get_methods("rise")[0].configure()], 10, 4, adapter)
    shards = plan.shards()
    assert [(s.start, s.stop, len(s.source)) for s in shards] == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert [s.seed for s in shards] == [shard_seed(0, i) for i in range(3)]
    assert plan.methods[0].run(seed=shards[1].seed).options.seed == shards[1].seed


_STATE = None


def _start(setup_fn):
    global _STATE
    _STATE = setup_fn()


def _call(work_fn, item):
    return work_fn(_STATE, item)


class PoolEngine:
    """Shards in two worker processes, results as they finish (the protocol a cluster engine keeps)."""

    name, workers = "pool", 2

    def map(self, setup_fn, work_fn, items, on_result):
        setup_fn, work_fn = pickle.loads(pickle.dumps(setup_fn)), pickle.loads(pickle.dumps(work_fn))
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=context, initializer=_start, initargs=(setup_fn,)) as pool:
            futures = {pool.submit(_call, work_fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                on_result(futures[future], future.result())


def test_shards_run_in_worker_processes_and_end_as_in_this_one(tmp_path, adapter):
    runs = [m.configure({"rise_masks": 100}) for m in get_methods("gradcam,rise")]
    plan = _plan(runs, 9, 2, adapter)
    job = ShardJob(plan.shards()[0], str(tmp_path / "x"))
    assert pickle.loads(pickle.dumps(partial(setup, plan))).args[0] == plan
    assert pickle.loads(pickle.dumps(job)) == job and pickle.loads(pickle.dumps(work)) is work
    _, local, _ = evaluate_run(plan, tmp_path / "local", LocalEngine(), progress=False)
    _, pooled, _ = evaluate_run(plan, tmp_path / "pool", PoolEngine(), progress=False)
    assert [r[:TIMING] for r in pooled] == [r[:TIMING] for r in local]
    manifest = json.loads((tmp_path / "pool" / "manifest.json").read_text())
    assert manifest["complete"] and sorted(manifest["done"], key=int) == [str(i) for i in range(5)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


class StopsAfter:
    """Works on the first ``n`` items, then is interrupted (as by Ctrl+C)."""

    name, workers = "stops", 1

    def __init__(self, n: int):
        self.n = n

    def map(self, setup_fn, work_fn, items, on_result):
        state = setup_fn()
        for i, item in enumerate(items[: self.n]):
            on_result(i, work_fn(state, item))
        raise KeyboardInterrupt


def test_an_interrupted_run_is_refused_unless_resumed_or_forced(tmp_path, adapter):
    from netreveal.errors import NetrevealError

    gradcam = get_methods("gradcam")[0].configure()
    plan, out = _plan([gradcam], 6, 2, adapter), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(plan, out, StopsAfter(1), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["done"]) == ["0"] and manifest["shards"] == 3 and not manifest["complete"]
    with pytest.raises(NetrevealError, match="holds an unfinished evaluation run; pass --resume"):
        evaluate_run(plan, out, LocalEngine(), progress=False)
    other = _plan([gradcam], 6, 3, adapter)
    with pytest.raises(NetrevealError, match=r"\(shard_size was 2, now 3\)"):
        evaluate_run(other, out, LocalEngine(), resume=True, progress=False)
    evaluate_run(other, out, LocalEngine(), force=True, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shards"] == 2 and manifest["complete"] and sorted((out / "shards").iterdir())[-1].name == "00001"
    with pytest.raises(KeyboardInterrupt):  # before its first shard: nothing is left behind
        evaluate_run(plan, tmp_path / "second", StopsAfter(0), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
