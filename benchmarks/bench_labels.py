"""The label pipeline on a parts-world study labelled by the simulated crowd.

Study: held-out (test-split) parts-world images, classes in turn; INV with the shipped demo model
on ``--layers`` (default the last nine conv layers), explaining the true class; every kept cluster
map is a study item. The simulated crowd (``netreveal.data.crowd``) labels each item 5-8 times at
each noise level: typos, irrelevant words and wrong class guesses (naming another part) all at
that rate. The labels then go through ``netreveal.labels.aggregate.explain_labels`` (clean,
spelling, embed with all-MiniLM-L6-v2, cluster, representative word, scores, local and global
explanations).

Printed, per noise level:

- the share of *aligned* cluster maps (best IoU of the map's top 5 % with a part >= 0.3, the
  README's alignment measure) whose representative label is a name of that part (any synonym or
  a word of a multi-word synonym, compared as lemmas), beside the same share for a plain
  majority vote (the most frequent cleaned label of the map);
- per class, whether the global explanation of the deepest layer names each of the class's
  defining parts among its top ``--top`` labels, and whether some layer does;
- seconds per 1,000 labels (wall clock and process CPU time, which a busy shared machine
  disturbs less) with a cold embedding cache (everything embedded) and a warm one (same labels
  again: cleaning, clustering, naming and aggregation only), and their ratio.

    python benchmarks/bench_labels.py [--images 80] [--layers last:9] [--noise 0,0.2,0.4]
        [--top 5] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from netreveal.data.crowd import CrowdConfig, partsworld_items, simulate_crowd
from netreveal.data.partsworld import CLASSES, PART_TYPES
from netreveal.labels.aggregate import explain_labels
from netreveal.labels.embed import Embedder, MemoryCache
from netreveal.labels.nlp import clean_label, lemma, tokenize
from netreveal.metrics.alignment import best_part_iou

IOU_THRESHOLD, FRACTION = 0.3, 0.05


def part_words() -> dict[str, set[str]]:
    """Part -> lemmas of every word of every name of the part."""
    return {p: {lemma(t) for n in pt.names for t in tokenize(n)} for p, pt in PART_TYPES.items()}


def names_part(label: str | None, words: set[str]) -> bool:
    """Whether a cleaned label (one or more words) consists of words of the part's names."""
    got = set((label or "").split())
    return bool(got) and got <= words


def aligned_items(items) -> dict[str, str]:
    """item id -> the part its map aligns with (only aligned maps)."""
    out = {}
    for item in items:
        iou, which = best_part_iou(item.map[None], item.part_masks, FRACTION)
        if float(iou[0]) >= IOU_THRESHOLD:
            out[item.item_id] = item.part_names[int(which[0])]
    return out


def majority(records, class_names) -> dict[str, str]:
    """item id -> its most frequent cleaned label (ties: first given)."""
    per_item: dict[str, Counter] = {}
    for r in records:
        text = clean_label(r.text, class_names)
        if text:
            per_item.setdefault(r.item_id, Counter())[text] += 1
    return {i: c.most_common(1)[0][0] for i, c in per_item.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=80)
    ap.add_argument("--layers", default="last:9")
    ap.add_argument("--noise", default="0,0.2,0.4")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    items, result, _ = partsworld_items(args.images, args.layers, seed=args.seed, batch_size=16)
    t_inv = time.perf_counter() - t0
    aligned = aligned_items(items)
    layers = result.layers
    print(f"study: {args.images} held-out parts-world images, {len(layers)} layers, "
          f"{len(items)} cluster maps ({len(aligned)} aligned with a part), INV {t_inv:.1f} s")
    per_layer = Counter(i.layer for i in items)
    per_layer_al = Counter(i.layer for i in items if i.item_id in aligned)
    print("aligned maps per layer: " + ", ".join(
        f"{name.replace('features.', '')} {per_layer_al[name]}/{per_layer[name]}" for name in layers))

    t0 = time.perf_counter()
    embedder = Embedder()
    embedder.encode(["load"])
    print(f"embedding model: {embedder.model_id}, loaded in {time.perf_counter() - t0:.1f} s")

    words = part_words()
    class_names = list(CLASSES)
    summary, class_rows = [], []
    for noise in [float(x) for x in args.noise.split(",")]:
        records = simulate_crowd(items, CrowdConfig.noisy(noise, seed=args.seed))
        embedder.cache = MemoryCache()
        t0, c0 = time.perf_counter(), time.process_time()
        out = explain_labels(records, layers, embedder, class_names, top=args.top)
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        explain_labels(records, layers, embedder, class_names, top=args.top)
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        best = {it.item_id: it.best for it in out.items}
        vote = majority(records, class_names)
        ok = sum(names_part(best.get(i), words[p]) for i, p in aligned.items())
        ok_vote = sum(names_part(vote.get(i), words[p]) for i, p in aligned.items())
        n = len(records)
        summary.append([f"{noise:.0%}", n, f"{ok / len(aligned):.1%}", f"{ok_vote / len(aligned):.1%}",
                        f"{1000 * cold / n:.2f} / {1000 * cold_cpu / n:.2f}",
                        f"{1000 * warm / n:.2f} / {1000 * warm_cpu / n:.2f}", f"{cold_cpu / warm_cpu:.1f}x"])
        glob = {(g.image_class, g.layer): g for g in out.global_explanations}
        for cls, parts in CLASSES.items():
            last = glob.get((cls, layers[-1]))
            top_last = [lab.word for lab in last.labels] if last else []
            named_last = [p for p in parts if any(names_part(w, words[p]) for w in top_last)]
            named_any = [p for p in parts if any(
                names_part(lab.word, words[p]) for g in glob.values() if g.image_class == cls
                for lab in g.labels)]
            class_rows.append([f"{noise:.0%}", cls, "+".join(parts),
                               f"{len(named_last)}/{len(parts)}", f"{len(named_any)}/{len(parts)}",
                               ", ".join(top_last)])

    print()
    print_table(["noise", "labels", "aligned maps named right", "majority vote",
                 "s / 1k labels cold (wall / CPU)", "warm (wall / CPU)", "cold / warm (CPU)"], summary)
    print()
    print(f"global explanations: defining parts among the top {args.top} labels "
          f"(deepest layer {layers[-1]}; any layer)")
    print_table(["noise", "class", "defining parts", "deepest", "any layer", "top labels, deepest layer"],
                class_rows)


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
