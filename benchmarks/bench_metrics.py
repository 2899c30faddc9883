"""Deletion + insertion throughput against plain batched forward passes of the same image count.

64 images at 64 px, 50 steps, both modes, blurred baseline, batch size 64, on the demo CNN (the
shipped weights when present, else the same architecture with random weights: the cost is the
same), or a small CNN when the demo model is not importable. The reference is 64 * 2 * 51 = 6528
images pushed through the model in batches of 64 under ``torch.no_grad``: what the two curves cost
if every point were one plain forward pass. Both are timed in interleaved rounds in one run (median
of the repeats, after warm-up); the ratio is our images per second over the reference's. Maps:
Grad-CAM at the last conv (8x8, ranked by cell), the same upsampled to 64x64 (ranked per pixel) and
random 8x8 maps, on held-out parts-world images; with untrained weights, random images and maps.
The mean areas are printed beside the timings (Grad-CAM should beat the random maps).

    python benchmarks/bench_metrics.py [--repeats 3] [--warmup 2] [--threads 2] [--clock wall|cpu]

On a busy machine ``--threads 1 --clock cpu`` is the control: it counts the CPU time this process
spends, not the time it waits for a core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.metrics.perturbation import deletion_insertion

N_IMAGES, SIZE, STEPS, BATCH = 64, 64, 50, 64


def small_cnn(classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, classes),
    )


def pick_model() -> tuple[str, nn.Module, bool]:
    """The demo CNN (and whether its trained weights loaded), else a small CNN."""
    torch.manual_seed(0)
    try:
        from netreveal.model.demo import DemoCNN, load_demo_model
    except ImportError as exc:
        print(f"[note] demo model not importable ({exc}); using a small CNN")
        return "small CNN (random w.)", small_cnn().eval(), False
    try:
        return "demo CNN", load_demo_model()[0], True
    except NetrevealError as exc:
        print(f"[note] {exc}; timing the demo architecture with random weights")
        return "demo CNN (random w.)", DemoCNN().eval(), False


def pick_inputs(model: nn.Module, trained: bool) -> tuple[str, torch.Tensor, dict]:
    """Held-out parts-world images with Grad-CAM maps for the trained demo model, else noise.

    Maps: Grad-CAM at the last conv (8x8 at 64 px, ranked by cell), the same maps upsampled to
    64x64 (ranked per pixel), and random 8x8 maps (the chance level for the areas).
    """
    gen = torch.Generator().manual_seed(0)
    rand8 = torch.rand(N_IMAGES, 8, 8, generator=gen)
    if trained:
        from netreveal.attribution.gradcam import gradcam
        from netreveal.data import PartsWorld

        images, _, _ = PartsWorld(size=SIZE).batch(range(N_IMAGES), split="test")
        cam = gradcam(model, images, "last:1")
        maps = {"Grad-CAM 8x8": cam.raw, "Grad-CAM 64x64": cam.maps, "random 8x8": rand8}
        return "parts world test images", images, maps
    images = torch.rand(N_IMAGES, 3, SIZE, SIZE, generator=gen)
    fine = torch.rand(N_IMAGES, SIZE, SIZE, generator=gen)
    return "random images", images, {"random 8x8": rand8, "random 64x64": fine}


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so drift hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds (at 5 steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    label, model, trained = pick_model()
    data, images, maps = pick_inputs(model, trained)
    n_reference = N_IMAGES * 2 * (STEPS + 1)

    def reference(n: int = n_reference) -> None:
        with torch.no_grad():
            for _ in range(0, n, BATCH):
                model(images)

    last: dict[str, dict[str, float]] = {}

    def ours(name: str, maps: torch.Tensor, steps: int = STEPS) -> Callable[[], object]:
        def run() -> None:
            res = deletion_insertion(
                model, images, maps, steps=steps, baseline="blur", batch_size=BATCH
            )
            last[name] = res.summary()

        return run

    # warm-up: the same code paths and shapes, at 5 steps
    warm = {name: ours(name, m, 5) for name, m in maps.items()}
    interleaved({"reference": lambda: reference(BATCH * 12), **warm}, args.warmup)
    fns = {"reference": reference, **{name: ours(name, m) for name, m in maps.items()}}
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    t = interleaved(fns, args.repeats, clock)

    print(
        f"\nDeletion + insertion, {N_IMAGES} images {SIZE}px, {STEPS} steps, batch {BATCH}, "
        f"{label} on {data} "
        f"(torch {torch.__version__}, {args.threads} threads, {args.clock} clock, "
        f"median of {args.repeats}, "
        f"{args.warmup} short warm-up rounds; load average {os.getloadavg()[0]:.1f} at the end)"
    )
    header = (
        f"{'run':30s} {'seconds':>9s} {'images/s':>10s} {'vs reference':>13s} "
        f"{'deletion AUC':>13s} {'insertion AUC':>14s}"
    )
    print(header)
    print("-" * len(header))
    ref_ips = n_reference / t["reference"]
    print(
        f"{'reference: ' + str(n_reference) + ' forwards':30s} {t['reference']:9.2f} "
        f"{ref_ips:10.0f} {1.0:13.2f}"
    )
    for name in maps:
        ips = n_reference / t[name]
        auc = last[name]
        print(
            f"{'ours, ' + name:30s} {t[name]:9.2f} {ips:10.0f} {ips / ref_ips:13.2f} "
            f"{auc['deletion_auc']:13.3f} {auc['insertion_auc']:14.3f}"
        )
    print("images/s counts the 64 x 2 x 51 curve points; target: ours >= 0.80 x reference")


if __name__ == "__main__":
    main()
