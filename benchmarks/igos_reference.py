"""I-GOS and iGOS++: the reference loop against netreveal's earlier loop on parts-world images.

For each method and variant, with default settings otherwise (28x28 mask, 15 iterations, 20 path
steps, line search, blur baseline, noise 0.2), on ``--images`` held-out parts-world images
(``partsworld_inputs``) with the demo CNN, each explaining its predicted class:

- area: mean of 1 - M over the mask's cells and the images (the salient share, as the IGOS_pp
  code reports masks: 1 - M is the heatmap before upsampling);
- deletion / insertion AUC (50 steps, blur baseline; RISE uses its own) under the three metric
  conventions, each ranking the optimised mask's cells;
- model evaluations per image (every image the model scored, with or without a backward pass)
  and CPU seconds per image.

    python benchmarks/igos_reference.py [--images 20] [--threads 1] [--mask-size 28]
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from netreveal.attribution.igos import igos
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.metrics import deletion_insertion
from netreveal.metrics.perturbation import CONVENTIONS
from netreveal.model.adapter import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mask-size", type=int, default=28)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--ig-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    adapter = load_model("demo")
    images = partsworld_inputs(adapter, args.images).images
    with torch.no_grad():
        targets = adapter.model(images).argmax(dim=1)
    n = len(images)
    print(f"demo CNN, {n} parts-world images at {images.shape[-1]} px, mask {args.mask_size}x{args.mask_size}, "
          f"{args.iterations} iterations x {args.ig_steps} path steps, {torch.get_num_threads()} thread(s)")
    head = f"{'method':7s} {'variant':10s} {'area':>6s}"
    for convention in CONVENTIONS:
        head += f" {convention + ' del':>13s} {convention + ' ins':>13s}"
    print(head + f" {'evals/img':>10s} {'cpu s/img':>10s}")
    for method in ("igos", "igos++"):
        for variant in ("netreveal", "reference"):
            _, cpu, result = timed(igos, adapter.model, images, targets, method=method, variant=variant,
                                   mask_size=args.mask_size, iterations=args.iterations,
                                   ig_steps=args.ig_steps, batch_size=64)
            row = f"{method:7s} {variant:10s} {float((1 - result.raw).mean()):6.3f}"
            for convention in CONVENTIONS:
                scores = deletion_insertion(adapter.model, images, 1 - result.raw, targets, steps=50,
                                            baseline="blur", batch_size=256, convention=convention)
                row += f" {float(scores.deletion_auc.mean()):13.3f} {float(scores.insertion_auc.mean()):13.3f}"
            evals = result.extras["model_inputs"] / n
            print(row + f" {evals:10.0f} {cpu / n:10.1f}", flush=True)


if __name__ == "__main__":
    main()
