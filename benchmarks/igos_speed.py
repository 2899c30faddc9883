"""I-GOS and iGOS++: the old default loop (``reference``) against the new default (``fast``).

One run, both loops side by side, on ``--images`` held-out parts-world images with the demo CNN
(each explaining its predicted class; 28x28 mask, 15 iterations x 20 path steps, blur baseline,
noise 0.2): model evaluations per image (images the model scored, with or without a backward
pass; backward passes are also given separately), deletion / insertion AUC (50 steps, ranking the
mask's cells) under the ``netreveal`` / ``igos`` / ``rise`` conventions, CPU seconds per image.

``--resnet``: torchvision ResNet-50 (random weights) on one random 224 px image, iGOS++ with the
new default for ``--resnet-iterations`` iterations (early stop off, so each iteration is a full
one): evaluations and CPU seconds per iteration, extrapolated to 15 iterations (an upper bound:
the early stop can only shorten a run). ``--resnet-full``: one whole default run instead.

    python benchmarks/igos_speed.py [--images 20] [--threads 1] [--resnet] [--resnet-iterations 2]
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from netreveal.attribution.igos import igos
from netreveal.model.counting import CountingModel

VARIANTS = ("reference", "fast")  # old default, new default


def row_key(method: str, label: str) -> str:
    """``--rows`` name of a demo row: "igos++:fast", "igos++:fast-lookahead-off", ..."""
    return f"{method}:{label.replace('look-ahead', 'lookahead').replace(', ', '-').replace(' ', '-')}"


def demo_table(args) -> None:
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.metrics import deletion_insertion
    from netreveal.metrics.perturbation import CONVENTIONS
    from netreveal.model.adapter import load_model

    adapter = load_model("demo")
    images = partsworld_inputs(adapter, args.images).images
    with torch.no_grad():
        targets = adapter.model(images).argmax(dim=1)
    n = len(images)
    counting = CountingModel(adapter.model)
    counting.std = getattr(adapter.model, "std", None)  # the noise scale reads the model's std
    print(f"demo CNN, {n} parts-world images at {images.shape[-1]} px, 28x28 mask, 15 iterations x "
          f"20 path steps, {torch.get_num_threads()} thread(s); AUC columns netreveal / igos / rise")
    print("| method | variant | evaluations per image | backward per image | iterations run | "
          "deletion AUC | insertion AUC | CPU s per image |")
    print("|---|---|---|---|---|---|---|---|")
    runs = [("igos", v, {}) for v in VARIANTS] + [("igos++", v, {}) for v in VARIANTS]
    runs.append(("igos++", "fast, look-ahead off", {"lookahead": False}))
    if args.rows:
        wanted = set(args.rows.split(","))
        unknown = wanted - {row_key(m, label) for m, label, _ in runs}
        if unknown:
            raise SystemExit(f"unknown rows {sorted(unknown)}; choose from "
                             f"{sorted(row_key(m, label) for m, label, _ in runs)}")
        runs = [run for run in runs if row_key(run[0], run[1]) in wanted]
    for method, label, extra in runs:
        variant = label.split(",")[0]
        counting.reset()
        _, cpu, result = timed(igos, counting, images, targets, method=method, variant=variant,
                               batch_size=64, **extra)
        counts = counting.reset()
        dels, inss = [], []
        for convention in CONVENTIONS:
            scores = deletion_insertion(adapter.model, images, 1 - result.raw, targets, steps=50,
                                        baseline="blur", batch_size=256, convention=convention)
            dels.append(f"{float(scores.deletion_auc.mean()):.3f}")
            inss.append(f"{float(scores.insertion_auc.mean()):.3f}")
        ran = float(result.extras["iterations_run"].float().mean())
        print(f"| {method} | {label} | {counts.forward / n:,.0f} | {counts.backward / n:,.0f} | "
              f"{ran:.1f} | {' / '.join(dels)} | {' / '.join(inss)} | {cpu / n:.1f} |", flush=True)


def resnet_row(args) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = CountingModel(resnet50().eval())
    image = torch.rand(1, 3, 224, 224)
    its = args.resnet_iterations
    full = args.resnet_full  # 15 iterations with the early stop on: the whole default run
    wall, cpu, result = timed(igos, model, image, method="igos++", variant="fast",
                              iterations=15 if full else its, tol=None if full else 0.0, batch_size=16)
    if full:
        its = int(result.extras["iterations_run"][0])
        print(f"\nResNet-50 (random weights) 224 px, iGOS++ fast default run: {its} iteration(s) "
              f"(early stop), {model.counts.forward:,} evaluations, {model.counts.backward:,} "
              f"backward, {cpu / 60:.1f} CPU min, {wall / 60:.1f} wall min, {torch.get_num_threads()} thread(s)")
        print("steps taken per iteration:", [round(float(s), 3) for s in result.extras["steps"][0]])
        return
    counts = model.reset()
    first_wall, first_cpu, _ = timed(lambda: model(image))  # the initial forward pass, not an iteration
    per_it_cpu, per_it_wall = (cpu - first_cpu) / its, (wall - first_wall) / its
    per_it_evals = (counts.forward - 1) / its
    print(f"\nResNet-50 (random weights) 224 px, iGOS++ fast, {its} iteration(s) measured, "
          f"{torch.get_num_threads()} thread(s)")
    print("| model | threads | evaluations per iteration | backward per iteration | CPU s per iteration | "
          "wall s per iteration | 15 iterations: evaluations | 15 iterations: CPU min | 15 iterations: wall min |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| ResNet-50 224 px | {torch.get_num_threads()} | {per_it_evals:,.0f} | {counts.backward / its:,.0f} | "
          f"{per_it_cpu:.1f} | {per_it_wall:.1f} | {1 + 15 * per_it_evals:,.0f} | "
          f"{(first_cpu + 15 * per_it_cpu) / 60:.1f} | {(first_wall + 15 * per_it_wall) / 60:.1f} |")
    print("steps taken per iteration:", [round(float(s), 3) for s in result.extras["steps"][0]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="",
                        help="only these demo rows, e.g. igos++:reference,igos++:fast (igos++:fast-lookahead-off "
                             "for the look-ahead-off row); default: all")
    parser.add_argument("--resnet", action="store_true", help="also time ResNet-50 at 224 px")
    parser.add_argument("--resnet-only", action="store_true", help="only the ResNet-50 row")
    parser.add_argument("--resnet-iterations", type=int, default=2)
    parser.add_argument("--resnet-full", action="store_true",
                        help="ResNet-50: one whole default run (early stop on) instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.resnet_only:
        demo_table(args)
    if args.resnet or args.resnet_only:
        resnet_row(args)


if __name__ == "__main__":
    main()
