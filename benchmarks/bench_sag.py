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
import time

import torch
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.sag import sag_expression, structured_attention_graph


def demo_setup(n: int) -> tuple[str, nn.Module, torch.Tensor]:
    try:
        from netreveal.data.partsworld import PartsWorld
        from netreveal.model.demo import load_demo_model

        model, _ = load_demo_model()
        images, _, _ = PartsWorld(size=64, split="test").batch(range(n))
        return "demo CNN, parts world 64px", model, images
    except (ImportError, NetrevealError, FileNotFoundError) as exc:
        from netreveal.model.demo import DemoCNN

        print(f"(demo model unavailable: {exc}; using a random-init DemoCNN and random images)")
        torch.manual_seed(0)
        return (
            "stand-in DemoCNN (random init), random 64px",
            DemoCNN().eval(),
            torch.rand(n, 3, 64, 64),
        )


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
        f"== SAG defaults on {name}: {images.shape[0]} images, {torch.get_num_threads()} thread(s)"
    )

    rows = []
    for i, image in enumerate(images):
        start = time.perf_counter()
        r = structured_attention_graph(model, image, baseline=args.baseline)
        total = time.perf_counter() - start
        # the saliency share: the same iGOS++ call on its own
        start = time.perf_counter()
        structured_attention_graph(model, image, baseline=args.baseline, saliency=r.saliency)
        search = time.perf_counter() - start
        rows.append(
            (
                total,
                total - search,
                r.forward_passes,
                r.saliency_forward_passes,
                len(r.roots),
                r.depth,
                r,
            )
        )
        print(
            f"image {i}: {total:6.2f} s, {r.forward_passes} passes, roots {sag_expression(r)!r}, "
            f"shown {r.shown}, stop {r.stop_reason}"
        )

    def med(k):
        return statistics.median(row[k] for row in rows)

    print(
        f"\n{'s/img':>7s} {'saliency s':>10s} {'search passes':>13s} {'saliency passes':>15s} "
        f"{'roots':>5s} {'depth':>5s}"
    )
    print(f"{med(0):7.2f} {med(1):10.2f} {med(2):13.0f} {med(3):15.0f} {med(4):5.0f} {med(5):5.0f}")

    print(
        "\n== search + graph only (saliency given): batched beam scoring vs one candidate per pass"
    )
    t_batched, t_single = [], []
    for row, image in zip(rows, images):
        sal = row[6].saliency
        for bs, store in ((64, t_batched), (1, t_single)):
            start = time.perf_counter()
            r = structured_attention_graph(
                model, image, baseline=args.baseline, saliency=sal, batch_size=bs
            )
            store.append(time.perf_counter() - start)
            assert r.roots == row[6].roots
    tb, ts = statistics.median(t_batched), statistics.median(t_single)
    print(f"{'batch_size 64 s/img':>20s} {'batch_size 1 s/img':>19s} {'speed-up':>8s}")
    print(f"{tb:20.2f} {ts:19.2f} {ts / tb:7.1f}x")


if __name__ == "__main__":
    main()
