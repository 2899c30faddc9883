"""Perturbation baselines (occlusion, LIME, KernelSHAP, RISE) and integrated gradients: seconds per image.

Models: the shipped demo CNN on the first ``--images`` parts-world test images (64 px; a random-init
``DemoCNN`` on random images when the weights are missing) and torchvision ResNet-50 (random init,
ImageNet normalisation inside, 224 px, random images). Each method runs once on the whole batch at its
defaults for the image size (occlusion 8/4 px windows at 64 px and 28/14 px at 224 px; LIME and
KernelSHAP ten samples per SLIC superpixel; RISE 4000 masks on a 7x7 grid; IG 50 steps), explaining
the predicted class, ``--batch-size`` perturbed images per forward pass, after one cheap warm-up
call of each method (imports, first forward of each shape).

ResNet-50 is costly on a 2-core CPU, so by default its sampled methods run with ``--resnet-fraction``
of their samples (LIME / KernelSHAP samples, RISE masks) and the seconds per image are scaled up to
the defaults (their cost is linear in the number of samples; the table says which rows are scaled).
``--full`` runs everything at the defaults.

Second table: RISE batched (:func:`netreveal.attribution.rise.rise`, the RISE row above) vs the
one-mask-at-a-time loop (:func:`netreveal.attribution.rise.rise_reference`: one masked image per
forward pass), run right after it on the same images. On the demo model both run all 4000 masks and
the row reports the largest difference between the two results; on ResNet-50 the loop runs
``--loop-masks`` masks per image and the batched version ``4000 * --resnet-fraction``, both scaled
to 4000 (said in the table).

    python benchmarks/bench_baselines.py [--images 4] [--threads 2] [--models demo,resnet50]
        [--batch-size 64] [--resnet-fraction 0.0625] [--loop-masks 8] [--full]

Wall and CPU seconds are both printed: on a shared machine the wall clock also counts waiting.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from common import demo_setup, timed
from torch import nn

from netreveal.attribution.baselines import integrated_gradients
from netreveal.attribution.captum_baselines import (
    default_samples,
    default_segments,
    default_window,
    kernel_shap,
    lime,
    occlusion,
)
from netreveal.attribution.rise import rise, rise_reference

RISE_MASKS = 4000




def resnet_setup(n: int) -> tuple[str, nn.Module, torch.Tensor]:
    from torchvision.models import resnet50

    from netreveal.model.adapter import IMAGENET_MEAN, IMAGENET_STD, NormalizedModel

    torch.manual_seed(0)
    model = NormalizedModel(resnet50(), IMAGENET_MEAN, IMAGENET_STD).eval()
    return "ResNet-50 224px", model, torch.rand(n, 3, 224, 224)




def warm_up(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> None:
    """One cheap call of each method (imports, first-call set-up of the forward shapes) before timing."""
    x, t = images[:1], targets[:1]
    side = min(x.shape[-2:]) // 2
    integrated_gradients(model, x, t, steps=2)
    occlusion(model, x, t, window=side, stride=side, batch_size=batch_size)
    lime(model, x, t, n_samples=4, batch_size=batch_size)
    kernel_shap(model, x, t, n_samples=4, batch_size=batch_size)
    rise(model, images, targets, n_masks=batch_size, batch_size=batch_size)
    rise_reference(model, x, t, n_masks=2)


def method_runs(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, fraction: float, batch_size: int):
    """(name, settings, evaluations per image at the defaults, scale to the defaults, call) per method."""
    h, w = images.shape[-2:]
    window, stride = default_window(min(h, w))
    windows = ((h - window) // stride + 1) * ((w - window) // stride + 1)
    segments = default_segments(h, w)
    samples = default_samples(segments)
    run_samples = max(2, round(samples * fraction))
    run_masks = max(1, round(RISE_MASKS * fraction))
    return [
        ("integrated gradients", "50 steps, black", 50, 1.0,
         lambda: integrated_gradients(model, images, targets, steps=50, batch_size=max(1, batch_size // 16))),
        ("occlusion", f"{window}/{stride} px, blur", windows, 1.0,
         lambda: occlusion(model, images, targets, batch_size=batch_size)),
        ("LIME", f"{samples} samples, {segments} sp", samples, samples / run_samples,
         lambda: lime(model, images, targets, n_samples=run_samples, batch_size=batch_size)),
        ("KernelSHAP", f"{samples} samples, {segments} sp", samples, samples / run_samples,
         lambda: kernel_shap(model, images, targets, n_samples=run_samples, batch_size=batch_size)),
        ("RISE", f"{RISE_MASKS} masks 7x7, black", RISE_MASKS, RISE_MASKS / run_masks,
         lambda: rise(model, images, targets, n_masks=run_masks, batch_size=batch_size)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="demo,resnet50", help="comma list: demo, resnet50")
    parser.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward pass")
    parser.add_argument("--resnet-fraction", type=float, default=0.0625,
                        help="share of LIME/KernelSHAP samples and RISE masks run on ResNet-50")
    parser.add_argument("--loop-masks", type=int, default=8, help="masks per image for the ResNet-50 RISE loop")
    parser.add_argument("--full", action="store_true", help="everything at the defaults (slow on ResNet-50)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    rows, rise_rows = [], []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name == "demo":
            label, model, images = demo_setup(args.images, "demo CNN 64px", "DemoCNN (random) 64px")
            fraction, loop_masks = 1.0, RISE_MASKS
        elif name == "resnet50":
            label, model, images = resnet_setup(args.images)
            fraction = 1.0 if args.full else args.resnet_fraction
            loop_masks = RISE_MASKS if args.full else args.loop_masks
        else:
            raise SystemExit(f"unknown model {name!r}")
        n = len(images)
        with torch.no_grad():
            targets = model(images).argmax(dim=1)
        warm_up(model, images, targets, args.batch_size)
        ig_wall, fast = None, None
        for method, settings, evals, scale, fn in method_runs(model, images, targets, fraction, args.batch_size):
            wall, cpu, out = timed(fn)
            wall, cpu = wall / n * scale, cpu / n * scale
            if ig_wall is None:
                ig_wall = wall
            if method == "RISE":
                fast, batched = out, (wall, cpu, round(evals / scale))
            note = "measured" if scale == 1.0 else f"x{scale:.1f} from {evals / scale:.0f}/img"
            rows.append((label, method, settings, evals, wall, cpu, wall / ig_wall, note))
            print(f"[{label}] {method}: {wall:.2f} s/img wall, {cpu:.2f} cpu ({note})", file=sys.stderr, flush=True)
        # the one-mask-at-a-time loop right after the batched run, on the same images
        loop_wall, loop_cpu, slow = timed(rise_reference, model, images, targets, n_masks=loop_masks)
        lw, lc = loop_wall / n * RISE_MASKS / loop_masks, loop_cpu / n * RISE_MASKS / loop_masks
        (bw, bc, batched_masks) = batched
        if batched_masks == loop_masks:
            gap = float((fast.raw - slow.raw).abs().max())
            note = f"both measured at {RISE_MASKS} masks/img; max |raw difference| {gap:.1e}"
        else:
            note = f"batched measured at {batched_masks}, loop at {loop_masks} masks/img; both scaled to {RISE_MASKS}"
        rise_rows.append((label, bw, bc, lw, lc, lw / bw, lc / bc, note))

    print(f"\nSeconds per image (torch {torch.__version__}, {args.threads} threads, {args.images} images per call, "
          f"{args.batch_size} perturbed images per forward; load average {load_start:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end)")
    header = (f"{'model':17s} {'method':21s} {'settings':26s} {'evals/img':>9s} {'wall s/img':>10s} "
              f"{'cpu s/img':>9s} {'x IG':>6s}  note")
    print(header)
    print("-" * len(header))
    for label, method, settings, evals, wall, cpu, ratio, note in rows:
        print(f"{label:17s} {method:21s} {settings:26s} {evals:9d} {wall:10.2f} {cpu:9.2f} {ratio:6.1f}  {note}")

    print(f"\nRISE, {RISE_MASKS} masks per image: batched vs one mask at a time")
    header = (f"{'model':17s} {'batched wall':>12s} {'cpu':>7s} {'loop wall':>10s} {'cpu':>7s} "
              f"{'speed-up wall':>13s} {'cpu':>6s}  note")
    print(header)
    print("-" * len(header))
    for label, bw, bc, lw, lc, sw, sc, note in rise_rows:
        print(f"{label:17s} {bw:12.2f} {bc:7.2f} {lw:10.2f} {lc:7.2f} {sw:12.1f}x {sc:5.1f}x  {note}")
    print("(seconds per image; target: batched >= 5x faster than the loop)")


if __name__ == "__main__":
    main()
