"""TCAV for several concepts: each concept computing its own random-pool activations, image
gradients and random-vs-random CAVs vs sharing them (what ``netreveal labels analyse`` does),
side by side in one run.

Demo model, parts-world test images; concepts are random regions of different images (the
timing does not depend on what they show); the random pool is ``2 * set_size * runs`` regions,
as in the label analysis. Both ways give identical scores (checked here and in the tests).

    python benchmarks/bench_tcav.py [--concepts 8] [--images 80] [--layers last:3] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
from common import demo_setup, timed

from netreveal.concepts.tcav import layer_activations, layer_gradients, random_region_images, tcav
from netreveal.model.layers import resolve_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=8)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--layers", default="last:3")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--set-size", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name, model, images = demo_setup(args.images)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    layers = [n for n, _ in resolve_layers(model, args.layers, example=images[:1])]
    pool = random_region_images(images, 2 * args.set_size * args.runs, seed=1)
    concepts = [random_region_images(images, args.set_size, seed=100 + c) for c in range(args.concepts)]
    kw = {"n_runs": args.runs, "set_size": args.set_size, "seed": 0}

    def separate():
        return [tcav(model, c, pool, images, targets, layers, **kw) for c in concepts]

    def shared():
        acts = layer_activations(model, pool, layers)
        grads = layer_gradients(model, images, targets, layers)
        cavs: dict = {}
        return [tcav(model, c, pool, images, targets, layers, random_activations=acts, image_gradients=grads,
                     random_cavs=cavs, **kw) for c in concepts]

    print(f"== TCAV on {name}: {args.concepts} concepts, {len(layers)} layers ({', '.join(layers)}), "
          f"{args.images} images, pool {pool.shape[0]}, {args.runs} runs, {torch.get_num_threads()} thread(s)")
    rows = {}
    for label, fn in (("each concept on its own", separate), ("pool, gradients, random CAVs shared", shared)):
        rows[label] = timed(fn)
    _, base_cpu, first = rows["each concept on its own"]
    print(f"{'':38s} {'wall s':>7s} {'cpu s':>7s} {'s/concept':>9s} {'speed-up (cpu)':>14s}")
    for label, (wall, cpu, _) in rows.items():
        print(f"{label:38s} {wall:7.1f} {cpu:7.1f} {cpu / args.concepts:9.2f} {base_cpu / cpu:13.2f}x")
    same = all(torch.equal(a.scores, b.scores) and torch.equal(a.random_scores, b.random_scores)
               for a, b in zip(first, rows["pool, gradients, random CAVs shared"][2]))
    print(f"identical TCAV scores: {same}")


if __name__ == "__main__":
    main()
