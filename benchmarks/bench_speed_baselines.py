"""Integrated gradients, LIME, KernelSHAP and RISE: today's paths against the previous ones, side by side.

One table: method | model | image size | model evaluations per image (old, new) | seconds per image
(old, new) | old / new | new against plain batched passes. Evaluations are counted by a wrapper
module (:class:`netreveal.model.counting.CountingModel`: images per forward pass and per backward
pass, so batching hides nothing) and shown as forward-pass equivalents (a backward pass = 2).
"Old" runs the previous code path in the same process:

- IG: captum's ``IntegratedGradients`` batch by batch with a target forward and captum's
  convergence delta (:func:`netreveal.attribution.baselines.integrated_gradients_reference`);
- LIME / KernelSHAP: superpixels and targets as before, then captum one image and one perturbed
  sample at a time (:func:`netreveal.attribution.surrogates.reference_coefficients`);
- RISE: masks made per chunk for every group of images and every call (``mask_cache=None``).

RISE runs one call per image (as batches or shards of a run arrive); the new path starts with an
empty mask cache, so its first call pays for the masks. "vs plain" divides the time of plain batched
passes doing the same model work by the new path's time: for IG, ``steps`` forward+backward passes
per image (target: >= 1 / 1.2); for the others, as many no-grad forward passes as evaluations
(RISE target: >= 0.9). Methods run at their defaults (IG 50 steps; LIME / KernelSHAP ten samples per
superpixel; RISE 4000 masks); on ResNet-50 or a timm model (random weights, 224 px; e.g.
``--models demo,resnet50,efficientnet_lite0``) the sampled methods run ``--resnet-fraction`` of
their samples: the evaluations are counted at that size and the seconds scaled to the defaults
(their cost is linear in the samples; ``--full`` runs the defaults).

    python benchmarks/bench_speed_baselines.py [--images 2] [--resnet-images 1] [--threads 2]
        [--models demo,resnet50] [--batch-size 64] [--ig-batch-size 4] [--resnet-fraction 0.125] [--full]
        [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch
from common import demo_setup, timed
from torch import nn

from netreveal.attribution import rise as rise_module
from netreveal.attribution.baselines import integrated_gradients, integrated_gradients_reference, path_batch
from netreveal.attribution.captum_baselines import default_samples, default_segments, kernel_shap, lime, superpixels
from netreveal.attribution.perturb import class_targets, conv_layout
from netreveal.attribution.rise import rise
from netreveal.attribution.surrogates import reference_coefficients
from netreveal.imaging import make_baseline
from netreveal.model.counting import CountingModel, EvalCounts
from netreveal.model.hooks import frozen

IG_STEPS = 50
RISE_MASKS = 4000


def big_setup(name: str, n: int) -> tuple[str, nn.Module, torch.Tensor]:
    """``resnet50`` (torchvision) or a timm model name, random weights (seed 0), ``n`` random 224 px images."""
    from netreveal.model.adapter import IMAGENET_MEAN, IMAGENET_STD, NormalizedModel

    torch.manual_seed(0)
    if name == "resnet50":
        from torchvision.models import resnet50

        label, net = "ResNet-50", resnet50(weights=None)
    else:
        import timm

        label, net = name, timm.create_model(name, pretrained=False)
    return label, NormalizedModel(net, IMAGENET_MEAN, IMAGENET_STD).eval(), torch.rand(n, 3, 224, 224)


def old_surrogate(method: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, n_samples: int,
                  batch_size: int) -> list[torch.Tensor]:
    """The previous LIME / KernelSHAP path: superpixels, targets, then captum per image and sample."""
    labels, _ = superpixels(images, default_segments(*images.shape[-2:]))
    with frozen(model), torch.no_grad():
        t, _ = class_targets(model, images, targets, batch_size, conv_layout(model), method)
        return reference_coefficients(method, model, images, make_baseline(images, "blur"), labels, t,
                                      n_samples=n_samples, seed=0, batch_size=batch_size)


def plain_forwards(model: nn.Module, images: torch.Tensor, per_image: int, batch_size: int) -> None:
    """``per_image`` no-grad forward passes per image, ``batch_size`` inputs per pass (channels last)."""
    layout = conv_layout(model)
    total = len(images) * per_image
    x = images[:1].expand(batch_size, -1, -1, -1).contiguous(memory_format=layout)
    with frozen(model), torch.no_grad():
        for start in range(0, total, batch_size):
            model(x[:min(batch_size, total - start)]).softmax(1)


def plain_forward_backward(model: nn.Module, images: torch.Tensor, per_image: int, batch_size: int) -> None:
    """``per_image`` forward+backward passes per image (gradient to the input), ``batch_size`` per pass."""
    layout = conv_layout(model)
    total = len(images) * per_image
    x = images[:1].expand(batch_size, -1, -1, -1).contiguous(memory_format=layout)
    with frozen(model):
        for start in range(0, total, batch_size):
            z = x[:min(batch_size, total - start)].clone().requires_grad_(True)
            torch.autograd.grad(model(z)[:, 0].sum(), z)


def rise_per_image(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, n_masks: int, batch_size: int,
                   cache) -> None:
    for i in range(len(images)):
        rise(model, images[i:i + 1], targets[i:i + 1], n_masks=n_masks, batch_size=batch_size, mask_cache=cache)


def fresh_cache_rise(*args) -> None:
    rise_module.MASK_CACHE.clear()
    rise_per_image(*args, rise_module.MASK_CACHE)


def cases(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, fraction: float, batch_size: int,
          ig_batch: int) -> list[tuple[str, int, int, Callable, Callable, Callable]]:
    """(method, samples at the defaults, samples run, old(model), new(model), plain()) per method."""
    segments = default_segments(*images.shape[-2:])
    samples = default_samples(segments)
    run_samples = max(2, round(samples * fraction))
    run_masks = max(1, round(RISE_MASKS * fraction))
    out = [(f"IG {IG_STEPS} steps", IG_STEPS, IG_STEPS,
            lambda m: integrated_gradients_reference(m, images, targets, steps=IG_STEPS, batch_size=ig_batch),
            lambda m: integrated_gradients(m, images, targets, steps=IG_STEPS, batch_size=ig_batch),
            lambda: plain_forward_backward(model, images, IG_STEPS, path_batch(ig_batch)))]
    for method, explain in (("lime", lime), ("kernelshap", kernel_shap)):
        out.append((f"{'LIME' if method == 'lime' else 'KernelSHAP'} {samples} samples", samples, run_samples,
                    lambda m, method=method: old_surrogate(method, m, images, targets, run_samples, batch_size),
                    lambda m, explain=explain: explain(m, images, targets, n_samples=run_samples,
                                                       batch_size=batch_size),
                    lambda: plain_forwards(model, images, run_samples, batch_size)))
    out.append((f"RISE {RISE_MASKS} masks", RISE_MASKS, run_masks,
                lambda m: rise_per_image(m, images, targets, run_masks, batch_size, None),
                lambda m: fresh_cache_rise(m, images, targets, run_masks, batch_size),
                lambda: plain_forwards(model, images, run_masks, batch_size)))
    return out


def evals(counts: EvalCounts, n: int) -> str:
    f, b = counts.forward / n, counts.backward / n
    return f"{f + 2 * b:.0f} ({f:.0f}f+{b:.0f}b)" if b else f"{f:.0f}"


def warm_up(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> None:
    """One cheap call of every path (imports, first forward of each shape) before timing."""
    x, t = images[:1], targets[:1]
    integrated_gradients(model, x, t, steps=2)
    integrated_gradients_reference(model, x, t, steps=2)
    lime(model, x, t, n_samples=4)
    old_surrogate("lime", model, x, t, 4, 4)
    rise(model, x, t, n_masks=4, mask_cache=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="demo images")
    parser.add_argument("--resnet-images", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="demo,resnet50",
                        help="comma list: demo, resnet50 (torchvision) or timm names, e.g. efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward pass")
    parser.add_argument("--ig-batch-size", type=int, default=4, help="IG batch size (path points per pass: x4)")
    parser.add_argument("--resnet-fraction", type=float, default=0.125,
                        help="share of LIME/KernelSHAP samples and RISE masks run on ResNet-50")
    parser.add_argument("--full", action="store_true", help="ResNet-50 at the default sample counts too")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each path; the fastest is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name == "demo":
            label, model, images = demo_setup(args.images, "demo CNN", "DemoCNN (random)")
            fraction = 1.0
        else:
            label, model, images = big_setup(name, args.resnet_images)
            fraction = 1.0 if args.full else args.resnet_fraction
        n, size = len(images), f"{images.shape[-1]} px"
        with torch.no_grad():
            targets = model(images).argmax(dim=1)
        warm_up(model, images, targets)
        counted = CountingModel(model)
        for method, samples, run, old, new, plain in cases(model, images, targets, fraction, args.batch_size,
                                                            args.ig_batch_size):
            scale = samples / run
            counted.reset()
            old_wall, old_cpu, _ = timed(old, counted)
            old_counts = counted.reset()
            new_wall, new_cpu, _ = timed(new, counted)
            new_counts = counted.reset()
            plain_wall, _, _ = timed(plain)
            for _ in range(args.repeats - 1):  # the fastest of each: waiting for a shared core only adds
                wall, cpu, _ = timed(old, model)
                old_wall, old_cpu = min(old_wall, wall), min(old_cpu, cpu)
                wall, cpu, _ = timed(new, model)
                new_wall, new_cpu = min(new_wall, wall), min(new_cpu, cpu)
                plain_wall = min(plain_wall, timed(plain)[0])
            note = "measured" if scale == 1.0 else f"evals at {run}/img; seconds x{scale:g} from them"
            rows.append((method, label, size, evals(old_counts, n), evals(new_counts, n),
                         old_wall / n * scale, new_wall / n * scale, old_wall / new_wall, old_cpu / new_cpu,
                         plain_wall / new_wall, note))
            print(f"[{label}] {method}: old {old_wall / n * scale:.2f} s/img, new {new_wall / n * scale:.2f}, "
                  f"plain {plain_wall / n * scale:.2f} ({note})", file=sys.stderr, flush=True)

    print(f"\ntorch {torch.__version__}, {args.threads} threads, demo {args.images} / 224 px models "
          f"{args.resnet_images} "
          f"images per call, {args.batch_size} perturbed images per pass, IG {path_batch(args.ig_batch_size)} "
          f"path points per pass, fastest of {args.repeats} runs; load average {load_start:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")
    header = (f"{'method':24s} {'model':10s} {'size':6s} {'evals/img old':>18s} {'evals/img new':>18s} "
              f"{'s/img old':>9s} {'s/img new':>9s} {'old/new':>7s} {'cpu':>5s} {'vs plain':>8s}  note")
    print(header)
    print("-" * len(header))
    for method, label, size, eo, en, so, sn, ratio, cpu, plain, note in rows:
        print(f"{method:24s} {label:10s} {size:6s} {eo:>18s} {en:>18s} {so:9.2f} {sn:9.2f} {ratio:6.2f}x "
              f"{cpu:4.2f}x {plain:8.2f}  {note}")
    print("(evals: forward-pass equivalents per image, f = images through forward passes, b = through backward "
          "passes, counted as 2; old/new: wall-clock ratio, cpu: CPU-time ratio; vs plain: plain batched passes "
          "doing the same model work / new)")


if __name__ == "__main__":
    main()
