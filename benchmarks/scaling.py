"""How cost grows: CPU seconds per image of Grad-CAM, INV, iGOS++, SAG and RISE at 1, 8 and 64 images
(at 64 px) and at 64, 128 and 224 px (one image), on the demo CNN and on torchvision ResNet-50.

Models: the shipped demo CNN on parts-world test images (drawn at each size; the CNN pools globally,
so it takes any size), and ResNet-50 with random weights (nothing is downloaded) on random images.
Every method runs through the public registry (``netreveal.methods.METHODS``) with its library
defaults, explaining the model's predicted class, at one thread; the cells are CPU seconds of this
process per image (= wall seconds on an idle core), so a shared machine's load does not inflate them.

The expensive methods are measured on less work and scaled up, as each cell says:

- iGOS++: ``--igos-iterations`` of its 15 iterations, times 15 / k (every iteration costs the same
  model inputs, up to the line search's trials), on at most ``--igos-images`` of the images (it
  batches images, so the cost per image hardly changes past a few);
- iGOS++ path steps: ``--igos-steps`` of 20, times 20 / s (the model inputs of an iteration grow
  with its path steps);
- SAG: at most ``--sag-images`` of the images (it explains one image at a time: the cost per image
  does not depend on how many there are), full search unless ``--sag-beam-width`` /
  ``--sag-saliency-steps`` cap it (then the cell is a lower bound);
- RISE: ``--rise-masks`` of its 4,000 masks, times 4000 / m (one model input per mask).

    python benchmarks/scaling.py [--quick] [--models demo,resnet50] [--methods gradcam,inv,igos++,sag,rise]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from netreveal.methods import METHODS
from netreveal.model.adapter import ModelAdapter, load_model

FULL_IGOS_ITERATIONS = METHODS["igos++"].Options().igos_iterations
FULL_IGOS_STEPS = METHODS["igos++"].Options().igos_steps
FULL_RISE_MASKS = METHODS["rise"].Options().rise_masks
MODELS = {"demo": "demo CNN (shipped weights, parts world)", "resnet50": "ResNet-50 (torchvision, random weights)"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much less work the expensive methods do than their defaults (see the module's docstring)."""

    igos_iterations: int
    igos_steps: int
    igos_images: int
    sag_images: int
    sag_beam_width: int | None
    sag_saliency_steps: int | None
    rise_masks: int

    def plan(self, method: str, n: int) -> tuple[dict, int, float, str]:
        """(options, images to run, factor to the full run, what was measured) for ``n`` images."""
        if method == "igos++":
            k, steps, m = self.igos_iterations, self.igos_steps, min(n, self.igos_images)
            factor = FULL_IGOS_ITERATIONS / k * FULL_IGOS_STEPS / steps
            return ({"igos_iterations": k, "igos_steps": steps}, m, factor,
                    f"{k} of {FULL_IGOS_ITERATIONS} iterations; {steps} of {FULL_IGOS_STEPS} path steps"
                    + (f"; {m} of {n} images" if m < n else ""))
        if method == "sag":
            m = min(n, self.sag_images)
            capped = {k: v for k, v in {"sag_beam_width": self.sag_beam_width,
                                        "sag_saliency_steps": self.sag_saliency_steps}.items() if v is not None}
            note = "capped search (" + ", ".join(f"{k} {v}" for k, v in capped.items()) + "; a lower bound)" \
                if capped else ""
            return capped, m, 1.0, "; ".join(x for x in (note, f"{m} of {n} images" if m < n else "") if x)
        if method == "rise":
            return {"rise_masks": self.rise_masks}, n, FULL_RISE_MASKS / self.rise_masks, \
                f"{self.rise_masks} of {FULL_RISE_MASKS} masks"
        return {}, n, 1.0, ""


def model_and_images(model: str, n: int, size: int) -> tuple[ModelAdapter, torch.Tensor]:
    """The adapter and ``n`` images of ``size`` px for ``model``."""
    if model == "demo":
        from netreveal.data.partsworld import PartsWorld

        images, _, _ = PartsWorld(size=size, split="test").batch(range(n))
        return load_model("demo"), images
    torch.manual_seed(0)  # the same random weights in every run, so runs compare (SAG's search depends on them)
    adapter = load_model(model, input_size=size)
    return adapter, torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


WARM_UP = {"igos_iterations": 1, "igos_steps": 1, "rise_masks": 8, "grid": 2, "sag_saliency_iterations": 1,
           "sag_saliency_steps": 1, "progress": False}


def warm_up(method: str, adapter: ModelAdapter, images: torch.Tensor) -> None:
    """Run ``method`` once, lightly, so lazy imports and first-call set-up stay out of the timings."""
    run = METHODS[method]
    run.run(adapter, images[:1], torch.zeros(1, dtype=torch.long), run.options(WARM_UP))


def seconds_per_image(method: str, adapter: ModelAdapter, images: torch.Tensor, limits: Limits) -> tuple[float, str]:
    """CPU seconds per image of ``method`` on ``images`` (scaled to the full run) and what was measured."""
    options, m, factor, measured = limits.plan(method, images.shape[0])
    images = images[:m]
    with torch.no_grad():
        targets = adapter.model(images).argmax(dim=1)
    run = METHODS[method]
    opts = run.options({**options, "progress": False})
    run.check(adapter, images[:1], opts)
    start = time.process_time()
    run.run(adapter, images, targets, opts)
    return (time.process_time() - start) * factor / m, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,resnet50", help="demo and/or resnet50")
    parser.add_argument("--methods", default="gradcam,inv,igos++,sag,rise")
    parser.add_argument("--counts", default="1,8,64", help="image counts (at the first size)")
    parser.add_argument("--sizes", default="64,128,224", help="image sides in px (one image)")
    parser.add_argument("--igos-iterations", type=int, default=2, help="iGOS++ iterations measured (default 2)")
    parser.add_argument("--igos-steps", type=int, default=FULL_IGOS_STEPS,
                        help=f"iGOS++ path steps measured (default {FULL_IGOS_STEPS}: all)")
    parser.add_argument("--igos-images", type=int, default=16, help="most images iGOS++ runs on (default 16)")
    parser.add_argument("--sag-images", type=int, default=4, help="most images SAG runs on (default 4)")
    parser.add_argument("--sag-beam-width", type=int, help="cap SAG's beam (default: the library's)")
    parser.add_argument("--sag-saliency-steps", type=int, help="cap the path steps of SAG's saliency map")
    parser.add_argument("--rise-masks", type=int, default=500, help="RISE masks measured (default 500)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="iGOS++: 1 iteration of 5 path steps on at most 8 images; SAG: 1 image, beam 1, "
                             "saliency 5 path steps; RISE: 100 masks")
    args = parser.parse_args()
    if args.quick:
        args.igos_iterations, args.igos_steps, args.igos_images, args.rise_masks = 1, 5, 8, 100
        args.sag_images, args.sag_beam_width, args.sag_saliency_steps = 1, 1, 5
    limits = Limits(args.igos_iterations, args.igos_steps, args.igos_images, args.sag_images, args.sag_beam_width,
                    args.sag_saliency_steps, args.rise_masks)
    torch.set_num_threads(args.threads)
    counts = [int(c) for c in args.counts.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    base = sizes[0]
    columns = [f"{c} img" for c in counts] + [f"{s} px" for s in sizes]
    print(f"CPU s per image at {args.threads} thread(s); image counts at {base} px, sizes at 1 image. "
          f"Measured: iGOS++ {limits.igos_iterations} of {FULL_IGOS_ITERATIONS} iterations (x{FULL_IGOS_ITERATIONS}"
          f"/{limits.igos_iterations}) of {limits.igos_steps} of {FULL_IGOS_STEPS} path steps (x{FULL_IGOS_STEPS}/"
          f"{limits.igos_steps}) on at most {limits.igos_images} images; SAG on at most {limits.sag_images} "
          f"image(s); RISE {limits.rise_masks} of {FULL_RISE_MASKS} masks (x{FULL_RISE_MASKS}/{limits.rise_masks}); "
          "other methods in full.\n", flush=True)
    print("| model | method | " + " | ".join(columns) + " | measured |")
    print("|---|---|" + "---:|" * len(columns) + "---|")
    started = time.perf_counter()
    for model in args.models.split(","):
        for method in methods:
            cells, notes, known = [], [], {}
            points = [(c, base) for c in counts] + [(1, s) for s in sizes]
            for n, size in points:
                if (n, size) not in known:
                    adapter, images = model_and_images(model, n, size)
                    if not known:
                        warm_up(method, adapter, images)
                    known[n, size] = seconds_per_image(method, adapter, images, limits)
                value, measured = known[n, size]
                cells.append(f"{value:.3g}")
                notes += [part for part in measured.split("; ") if part and part not in notes]
            print(f"| {MODELS.get(model, model)} | {method} | " + " | ".join(cells) + " | "
                  + "; ".join(notes) + " |", flush=True)
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
