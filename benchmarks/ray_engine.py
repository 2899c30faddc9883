"""Images per second of the local engine and of the Ray engine with 1 and 2 workers.

The workload is the one a sharded run sends each worker: the shipped demo CNN (loaded once per
worker from a ``ModelSpec``), Grad-CAM and RISE (seeded per shard) over shards of 64 px parts-world
test images sent to the workers as tensors. Each Ray row counts everything a ``map`` call costs
(starting the worker processes, loading the model, sending shards, returning maps); Ray's own
start-up, paid once per process, is timed apart. The local engine runs in this process with
torch's default thread count and with one thread; each Ray worker has one CPU (one thread). The
CPU seconds column counts what ``explain`` itself spent (summed over workers): on a shared machine
the wall-clock rows also count waiting for a core.

    python benchmarks/ray_engine.py [--images 256] [--shard 32] [--rise-masks 32]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from netreveal.data.partsworld import PartsWorld
from netreveal.engines import LocalEngine, ModelSpec
from netreveal.engines.ray_engine import RayEngine
from netreveal.methods import METHODS


def load(settings: dict) -> dict:
    return {"adapter": ModelSpec().load(), "settings": settings, "threads": torch.get_num_threads(),
            "pid": os.getpid()}


def explain(state: dict, item: tuple[torch.Tensor, int]) -> dict:
    cpu = time.process_time()
    images, seed = item
    adapter = state["adapter"]
    with torch.no_grad():
        targets = adapter.model(images).argmax(dim=1)
    maps = {}
    for name, settings in state["settings"].items():
        method = METHODS[name]
        options = method.options({**settings, "seed": seed, "batch_size": len(images), "progress": False})
        maps[name] = method.run(adapter, images, targets, options).maps
    return {"maps": maps, "threads": state["threads"], "pid": state["pid"], "cpu": time.process_time() - cpu}


def run(engine, shards: list, settings: dict) -> tuple[float, dict]:
    outcomes: dict[int, dict] = {}
    start = time.perf_counter()
    engine.map(lambda: load(settings), explain, shards, outcomes.__setitem__)
    return time.perf_counter() - start, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--shard", type=int, default=32)
    parser.add_argument("--rise-masks", type=int, default=32)
    args = parser.parse_args()
    images, _, _ = PartsWorld(size=64, split="test").batch(range(args.images))
    shards = [(images[i:i + args.shard], i) for i in range(0, args.images, args.shard)]
    settings = {"gradcam": {}, "rise": {"rise_masks": args.rise_masks}}
    print(f"demo CNN, {args.images} parts-world images in shards of {args.shard}, Grad-CAM + RISE "
          f"({args.rise_masks} masks), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    run(LocalEngine(), shards[:1], settings)  # warm up this process (first calls, allocator)
    rows = []
    default_threads = torch.get_num_threads()
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        seconds, outcomes = run(LocalEngine(), shards, settings)
        rows.append((f"local, {threads} thread(s)", seconds, outcomes))
    torch.set_num_threads(default_threads)
    reference = rows[-1][2]  # one thread, as each Ray worker

    start = time.perf_counter()
    session = RayEngine(workers=2).__enter__()
    startup = time.perf_counter() - start
    for workers in (1, 2):
        seconds, outcomes = run(RayEngine(workers=workers), shards, settings)
        assert len({o["pid"] for o in outcomes.values()}) == workers
        rows.append((f"ray, {workers} worker(s) x {outcomes[0]['threads']} thread(s)", seconds, outcomes))
    start = time.perf_counter()
    session.__exit__(None, None, None)
    shutdown = time.perf_counter() - start

    print("\n| engine | seconds | images/s | CPU s per image in work | max abs. difference from local, 1 thread |"
          "\n|---|---|---|---|---|")
    for label, seconds, outcomes in rows:
        diff = max(float((outcomes[i]["maps"][m] - reference[i]["maps"][m]).abs().max())
                   for i in reference for m in settings)
        cpu = sum(o["cpu"] for o in outcomes.values()) / args.images
        print(f"| {label} | {seconds:.1f} | {args.images / seconds:.1f} | {cpu:.3f} | {diff:.1e} |")
    print(f"\nRay start-up (local, in process): {startup:.1f} s; shutdown {shutdown:.1f} s; "
          f"load average now {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
