"""Structured Attention Graphs per variant on the demo model: roots, their size, whether they hold
under the reference's soft patches, forward passes and seconds per image.

Images: the first ``--images`` parts-world test images (``partsworld_inputs``, 64 px) and the
shipped demo CNN (``load_model("demo")``), each explained for its predicted class with the
library defaults of each ``--variants`` entry (black baseline, 7x7 grid).

Table 1, per variant (means over images): images with at least one root, roots found per
image, root size (patches, over all roots), the share of all roots that are sufficient under the
reference's soft patches (pasted as bilinearly upsampled 0/1 grids on black, probability above
0.9 x the full image's), roots drawn in the graph, forward passes per image (search + graph, and
the I-GOS map that ranks the patches), CPU and wall seconds per image. With ``--batching`` a
second table re-runs the first variant with the saliency fixed, scoring in batches of 64 vs one
patch set per forward pass (same results).

    python benchmarks/bench_sag.py [--images 20] [--variants netreveal,reference] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import timed

from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.imaging import make_baseline
from netreveal.model.adapter import load_model
from netreveal.sag import root_sets_text, structured_attention_graph
from netreveal.sag.patches import PatchScorer


def sufficient_under_soft_patches(model, image, result) -> list[bool]:
    """For each root of ``result``: is it sufficient when pasted the reference's way (soft patches
    on black, probability above 0.9 x the full image's)?"""
    base = make_baseline(image[None], "black")[0]
    scorer = PatchScorer(model, image, base, result.target, result.grid, 64, insertion="soft")
    needed = 0.9 * result.full_prob
    return [p > needed for p in scorer.score([tuple(r) for r in result.roots])]


def compare(model, images, variants: list[str]) -> dict[str, list]:
    runs: dict[str, list] = {v: [] for v in variants}
    for i, image in enumerate(images):
        for variant in variants:
            wall, cpu, r = timed(structured_attention_graph, model, image, variant=variant)
            soft = sufficient_under_soft_patches(model, image, r)
            runs[variant].append({"wall": wall, "cpu": cpu, "result": r, "soft": soft})
            print(f"image {i:2d} {variant:>14s}: {cpu:6.2f} cpu s, {len(r.roots):2d} roots "
                  f"(sizes {[len(x) for x in r.roots]}), {sum(soft)} sufficient soft, "
                  f"stop {r.stop_reason}: {root_sets_text(r.roots)[:90]}")
    return runs


def summary(runs: dict[str, list]) -> None:
    header = ["variant", "with a root", "roots/img", "root size", "soft-sufficient", "drawn/img",
              "passes/img", "+ saliency", "cpu s/img", "wall s/img"]
    print("\n" + "  ".join(f"{h:>15s}" for h in header))
    for variant, rows in runs.items():
        n = len(rows)
        roots = [r for row in rows for r in row["result"].roots]
        soft = [s for row in rows for s in row["soft"]]
        values = [
            variant,
            f"{sum(bool(row['result'].roots) for row in rows)}/{n}",
            f"{len(roots) / n:.2f}",
            f"{sum(map(len, roots)) / max(len(roots), 1):.2f}",
            f"{sum(soft)}/{len(soft)} ({sum(soft) / max(len(soft), 1):.0%})",
            f"{sum(len(row['result'].shown) for row in rows) / n:.2f}",
            f"{sum(row['result'].forward_passes for row in rows) / n:.0f}",
            f"{sum(row['result'].saliency_forward_passes for row in rows) / n:.0f}",
            f"{sum(row['cpu'] for row in rows) / n:.2f}",
            f"{sum(row['wall'] for row in rows) / n:.2f}",
        ]
        print("  ".join(f"{v:>15s}" for v in values))


def batching(model, images, rows, variant: str) -> None:
    print(f"\n== {variant}, search + graph only (saliency given): batches of 64 vs one set per pass")
    spent = {64: [], 1: []}
    for row, image in zip(rows, images, strict=True):
        first = row["result"]
        for bs, times in spent.items():
            _, cpu, r = timed(structured_attention_graph, model, image, variant=variant,
                              saliency=first.saliency, batch_size=bs)
            times.append(cpu)
            assert r.roots == first.roots
    tb, ts = statistics.median(spent[64]), statistics.median(spent[1])
    print(f"{'batch_size 64 cpu s/img':>24s} {'batch_size 1 cpu s/img':>23s} {'speed-up':>8s}")
    print(f"{tb:24.2f} {ts:23.2f} {ts / tb:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--variants", default="netreveal,reference")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batching", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adapter = load_model("demo")
    images = partsworld_inputs(adapter, args.images).images
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(f"== SAG variants {', '.join(variants)} on the demo CNN, {len(images)} parts-world images, "
          f"{torch.get_num_threads()} thread(s)")
    runs = compare(adapter.model, images, variants)
    summary(runs)
    if args.batching:
        batching(adapter.model, images, runs[variants[0]], variants[0])


if __name__ == "__main__":
    main()
