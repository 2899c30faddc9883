"""iGOS++ throughput: a batch of images in one call vs the same function one image at a time.

Demo rows: the shipped parts-world CNN on 64 px parts-world test images (a randomly initialised
``DemoCNN`` of the same architecture on random images when the weights are not installed),
iGOS++ with default settings (28x28 mask, 15 iterations, 20 path steps, line search), run
(a) once on a batch of ``--images`` images and (b) in a loop over the same images one at a time,
interleaved in one run. ``batch_size`` is the number of model inputs (image x term x path step)
per forward pass; the batched call is also timed with a larger chunk.

For scale the script also prints the model's plain forward throughput at batch 1 / 32 / 128: on a
CPU the cost per image is nearly flat in the batch size, which bounds what batching images (on top
of the path steps already batched for a single image) can gain there.

ResNet-50 row (``--resnet``): torchvision ResNet-50 (random init, 224 px, batch 4) with
``--resnet-iterations`` iterations (default 1: one default iGOS++ run is about 15x that, see the
extrapolated column, which adds 14 more iterations at the measured per-iteration cost).

    python benchmarks/bench_igos.py [--images 16] [--repeats 2] [--threads 1] [--resnet]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import demo_setup, timed
from torch import nn

from netreveal.attribution.igos import igos


def forward_rate(model: nn.Module, batch: int, size: int, seconds: float = 1.0) -> float:
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        model(x)
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            model(x)
            done += batch
    return done / (time.perf_counter() - start)




def demo_rows(args) -> None:
    name, model, images = demo_setup(args.images)
    n = images.shape[0]
    print(f"\n== iGOS++ defaults on {name}: {n} images, {torch.get_num_threads()} thread(s)")
    rates = {b: forward_rate(model, b, images.shape[-1]) for b in (1, 32, 128)}
    print("plain forward, images/s: " + ", ".join(f"batch {b}: {r:.0f}" for b, r in rates.items()))

    def loop(batch_size: int):
        return [igos(model, images[i : i + 1], batch_size=batch_size) for i in range(n)]

    cases = {
        "one image at a time (batch_size 32)": lambda: loop(32),
        f"batch of {n} (batch_size 32)": lambda: igos(model, images, batch_size=32),
        f"batch of {n} (batch_size 128)": lambda: igos(model, images, batch_size=128),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    inputs: dict[str, int] = {}
    results = {}
    for _ in range(args.repeats):
        for key, fn in cases.items():
            elapsed, cpu, out = timed(fn)
            times[key].append(elapsed)
            cpus[key].append(cpu)
            outs = out if isinstance(out, list) else [out]
            inputs[key] = sum(o.extras["model_inputs"] for o in outs)
            results[key] = out
    loop_key = "one image at a time (batch_size 32)"
    base, base_cpu = statistics.median(times[loop_key]), statistics.median(cpus[loop_key])
    print(
        f"{'run':38s} {'wall s':>7s} {'cpu s':>7s} {'img/s':>6s} {'cpu s/img':>9s} "
        f"{'inputs/img':>10s} {'speed-up wall':>13s} {'cpu':>5s}"
    )
    for key, ts in times.items():
        t, c = statistics.median(ts), statistics.median(cpus[key])
        print(
            f"{key:38s} {t:7.1f} {c:7.1f} {n / t:6.2f} {c / n:9.2f} {inputs[key] / n:10.0f} "
            f"{base / t:12.2f}x {base_cpu / c:4.2f}x"
        )
    single = torch.cat([r.maps for r in results["one image at a time (batch_size 32)"]])
    batched = results[f"batch of {n} (batch_size 32)"].maps
    print(f"max |map difference| batched vs one at a time: {(single - batched).abs().max():.2e}")


def resnet_row(args) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50().eval()
    images = torch.rand(4, 3, 224, 224)
    its = args.resnet_iterations
    print(f"\n== ResNet-50 (random init) 224px, batch 4, iGOS++, {its} iteration(s), else defaults")
    fwd = forward_rate(model, 4, 224, seconds=3.0)
    elapsed, cpu, r = timed(lambda: igos(model, images, iterations=its, batch_size=16))
    inputs = r.extras["model_inputs"]
    rows = []
    for label, spent in (("wall", elapsed), ("cpu", cpu)):
        init = spent * (4 * 4 * 20) / inputs  # initial objective: 4 terms x 20 steps, forward only
        per_iter = (spent - init) / its
        rows.append((label, spent, per_iter / 4, (init + 15 * per_iter) / 4))
    print(f"plain forward: {fwd:.2f} img/s; model inputs per image: {inputs / 4:.0f}")
    head = "s/img at 15 iterations (extrapolated)"
    print(f"{'':5s} {'s total':>8s} {'s/img/iteration':>15s} {head:>38s}")
    for label, spent, per_img_iter, full in rows:
        print(f"{label:5s} {spent:8.1f} {per_img_iter:15.1f} {full:38.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resnet", action="store_true", help="also time ResNet-50 at 224 px")
    parser.add_argument("--resnet-iterations", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    demo_rows(args)
    if args.resnet:
        resnet_row(args)


if __name__ == "__main__":
    main()
