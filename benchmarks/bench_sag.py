"""Structured Attention Graph cost per image on the demo model: seconds and forward passes.

Images: the first ``--images`` parts-world test images (64 px) and the shipped demo CNN (a
random-init ``DemoCNN`` on random images when the weights are not installed). SAG with defaults
(7x7 grid, black baseline, beam 5, 15 successors, up to 10 roots, iGOS++ saliency at 7x7).

Columns per image (medians over the images): total seconds, of which the iGOS++ saliency map;
forward passes of the search and graph (images scored) and of the saliency; roots found; depth
reached. A second table re-runs the search with the saliency fixed, scoring the beam in batches of
64 vs one candidate per forward pass (``batch_size=1``), interleaved, same results.

    python benchmarks/bench_sag.py [--images 8] [--threads 1] [--baseline black|blur]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import demo_setup, timed

from netreveal.sag import sag_expression, structured_attention_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--baseline", default="black", choices=["black", "blur"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name, model, images = demo_setup(args.images)
    print(
        f"== SAG defaults, {args.baseline} baseline, on {name}: {images.shape[0]} images, "
        f"{torch.get_num_threads()} thread(s)"
    )

    rows = []
    for i, image in enumerate(images):
        sag = structured_attention_graph
        wall, cpu, r = timed(sag, model, image, baseline=args.baseline)
        # the saliency share: the same call with the map given
        _, search_cpu, _ = timed(sag, model, image, baseline=args.baseline, saliency=r.saliency)
        rows.append(
            {
                "wall": wall,
                "cpu": cpu,
                "saliency cpu": cpu - search_cpu,
                "search passes": r.forward_passes,
                "saliency passes": r.saliency_forward_passes,
                "roots": len(r.roots),
                "depth": r.depth,
                "result": r,
            }
        )
        print(
            f"image {i}: {wall:6.2f} s wall, {cpu:6.2f} s cpu, {r.forward_passes} passes, "
            f"roots {sag_expression(r)!r}, shown {r.shown}, stop {r.stop_reason}"
        )

    keys = ["wall", "cpu", "saliency cpu", "search passes", "saliency passes", "roots", "depth"]
    print("\nmedians per image (cpu s = wall s on an idle machine at one thread)")
    print("  ".join(f"{k:>15s}" for k in keys))
    print("  ".join(f"{statistics.median(row[k] for row in rows):15.2f}" for k in keys))

    print(
        "\n== search + graph only (saliency given): batched beam scoring vs one candidate per pass"
    )
    spent = {64: [], 1: []}
    for row, image in zip(rows, images, strict=True):
        first = row["result"]
        for bs, times in spent.items():
            _, cpu, r = timed(
                structured_attention_graph,
                model,
                image,
                baseline=args.baseline,
                saliency=first.saliency,
                batch_size=bs,
            )
            times.append(cpu)
            assert r.roots == first.roots
    tb, ts = statistics.median(spent[64]), statistics.median(spent[1])
    print(f"{'batch_size 64 cpu s/img':>24s} {'batch_size 1 cpu s/img':>23s} {'speed-up':>8s}")
    print(f"{tb:24.2f} {ts:23.2f} {ts / tb:7.1f}x")


if __name__ == "__main__":
    main()
