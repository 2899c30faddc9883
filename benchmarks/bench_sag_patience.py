"""What stopping the reference beam search early (``patience``) costs in roots and graph, on the
demo CNN: per setting, roots found per image, images whose drawn roots and graph are unchanged,
roots of the full search kept, forward passes and CPU seconds per image (search + graph; the I-GOS
map is computed once per image and given to every run).

    python benchmarks/bench_sag_patience.py [--images 20] [--patience 1,2,3,5] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.model.adapter import load_model
from netreveal.sag import structured_attention_graph


def drawn(r) -> tuple:
    return ([r.roots[i] for i in r.shown], [(n.patches, n.prob) for n in r.nodes],
            [(e.parent, e.child, e.removed) for e in r.edges])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--patience", default="1,2,3,5")
    parser.add_argument("--variant", default="reference")
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapter = load_model("demo")
    images = partsworld_inputs(adapter, args.images).images
    settings = [None] + [int(p) for p in args.patience.split(",")]
    rows = {p: {"roots": 0, "same graph": 0, "kept": 0, "passes": 0, "cpu": 0.0} for p in settings}
    total_roots = 0
    for i, image in enumerate(images):
        sal = structured_attention_graph(adapter.model, image, variant=args.variant, max_patches=1).saliency
        full = None
        for p in settings:
            _, cpu, r = timed(structured_attention_graph, adapter.model, image, variant=args.variant,
                              beam_width=args.beam_width, saliency=sal, patience=p)
            full = full or r
            row = rows[p]
            row["roots"] += len(r.roots)
            row["same graph"] += drawn(r) == drawn(full)
            row["kept"] += sum(root in full.roots for root in r.roots)
            row["passes"] += r.forward_passes
            row["cpu"] += cpu
        total_roots += len(full.roots)
        print(f"image {i}: {len(full.roots)} roots without patience", flush=True)
    n = len(images)
    print("\n| patience | roots / image | share of the full search's roots | images with the same drawn roots "
          "and graph | forward passes / image | CPU s / image |\n|---|---|---|---|---|---|")
    for p, row in rows.items():
        print(f"| {'off (reference)' if p is None else p} | {row['roots'] / n:.2f} | "
              f"{row['kept'] / max(total_roots, 1):.0%} | {row['same graph']} / {n} | {row['passes'] / n:.0f} | "
              f"{row['cpu'] / n:.2f} |")


if __name__ == "__main__":
    main()
