"""SAG search + graph before and after the speed work, side by side in one run.

For each model the I-GOS map that ranks the patches is computed once per image (by the current
code) and given to both runs, so the table compares the search and the graph alone (the map's own
cost is printed apart). "before" is the ``src/netreveal/sag`` package of ``--before`` (a git
commit, default the one before the speed work), loaded from git next to the current one.

Models: the shipped demo CNN on 64 px parts-world images, and torchvision's ResNet-50 with random
weights (seed 0) on the same images resized to 224 px. Each image is explained for its predicted
class with the ``--variant`` defaults (``--beam-width`` 5 unless given). Columns:

- forward passes per image: ``reference`` = one pass per patch set asked for, repeats included
  (what the reference code runs), plus the full image; ``before`` / ``after`` = images the
  model saw (counted by :class:`~netreveal.model.counting.CountingModel`);
- CPU s per image of this process (``--threads`` 1 or 2 on a shared machine);
- with ``--patience N``: the current code stopping the reference search after N depths without
  a new root (an option that changes results; roots kept and drawn roots are printed per image);
- the I-GOS map's passes (forward; each with a backward pass) and CPU s (with a one-depth search).

    python benchmarks/bench_sag_speed.py [--images 2] [--resnet-images 1] [--threads 1] [--patience 3]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from common import timed

from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.model.adapter import load_model
from netreveal.model.counting import CountingModel
from netreveal.sag import structured_attention_graph

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "893d184"


def load_before(commit: str):
    """``structured_attention_graph`` of ``src/netreveal/sag`` at ``commit``, as package
    ``sag_before`` (its imports of ``netreveal.sag`` rewritten to it)."""
    folder = Path(tempfile.mkdtemp(prefix="sag_before_")) / "sag_before"
    folder.mkdir()
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{commit}:src/netreveal/sag"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/netreveal/sag/{name}"],
                                  check=True, capture_output=True, text=True).stdout
            (folder / name).write_text(text.replace("netreveal.sag", "sag_before"))
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("sag_before.explain").structured_attention_graph


def big_model(name: str) -> torch.nn.Module:
    """``resnet50`` (torchvision) or a timm model name, with random weights (seed 0)."""
    torch.manual_seed(0)
    if name == "resnet50":
        from torchvision.models import resnet50

        return resnet50(weights=None).eval()
    import timm

    return timm.create_model(name, pretrained=False).eval()


def run(explain, model: CountingModel, image, saliency, settings) -> tuple[float, int, object]:
    model.reset()
    _, cpu, result = timed(explain, model, image, saliency=saliency, **settings)
    return cpu, model.counts.forward, result


def same_graph(a, b) -> bool:
    """Same roots, root probabilities, drawn roots, nodes and edges (bit for bit)."""
    def parts(r):
        return (r.roots, r.root_probs, r.shown, [(n.patches, n.prob, n.level) for n in r.nodes],
                [(e.parent, e.child, e.removed) for e in r.edges])

    return parts(a) == parts(b)


def measure(name: str, model, images, settings, patience: int | None) -> list[str]:
    before = load_before.cached
    counted = CountingModel(model)
    rows = {"reference": [], "before": [], "after": [], "cpu before": [], "cpu after": [], "map": [],
            "map cpu": [], "patience": [], "cpu patience": []}
    for i, image in enumerate(images):
        counted.reset()
        # the map, with a one-depth search
        map_cpu, _, first = timed(structured_attention_graph, counted, image, **settings, max_patches=1)
        rows["map"].append(first.saliency_forward_passes)
        rows["map cpu"].append(map_cpu)
        cpu_new, passes_new, new = run(structured_attention_graph, counted, image, first.saliency, settings)
        cpu_old, passes_old, old = run(before, counted, image, first.saliency, settings)
        assert same_graph(new, old), f"{name} image {i}: the results differ"
        rows["reference"].append(new.requested_sets + 1)
        rows["before"].append(passes_old)
        rows["after"].append(passes_new)
        rows["cpu before"].append(cpu_old)
        rows["cpu after"].append(cpu_new)
        if patience is not None:
            cpu_early, passes_early, early = run(structured_attention_graph, counted, image, first.saliency,
                                                 {**settings, "patience": patience})
            rows["patience"].append(passes_early)
            rows["cpu patience"].append(cpu_early)
            kept = sum(root in new.roots for root in early.roots)
            print(f"    with patience {patience}: {len(early.roots)} roots ({kept} of the full search's), same "
                  f"drawn roots {[early.roots[j] for j in early.shown] == [new.roots[j] for j in new.shown]}, "
                  f"{passes_early} passes, {cpu_early:.1f} cpu s", flush=True)
        print(f"  {name} image {i}: {len(new.roots)} roots (sizes {[len(r) for r in new.roots]}), stop "
              f"{new.stop_reason} at depth {new.depth}; passes reference {new.requested_sets + 1}, before "
              f"{passes_old}, after {passes_new}; cpu s before {cpu_old:.1f}, after {cpu_new:.1f}; "
              f"channels-last {counted.counts.channels_last > 0}", flush=True)
    n = len(images)
    size = f"{images.shape[-1]} px"

    def mean(key: str, fmt: str = "{:.0f}") -> str:
        return fmt.format(sum(rows[key]) / n)

    row = [name, size, mean("reference"), mean("before"), mean("after"), mean("cpu before", "{:.1f}"),
           mean("cpu after", "{:.1f}")]
    if patience is not None:
        row += [f"{mean('patience')} / {mean('cpu patience', '{:.1f}')}"]
    return row + [f"{mean('map')} ({mean('map cpu', '{:.0f}')} s)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="demo CNN images")
    parser.add_argument("--resnet-images", type=int, default=1, help="images for --big-model (0: skip)")
    parser.add_argument("--big-model", default="resnet50",
                        help="the 224 px model: resnet50 (torchvision) or a timm name, e.g. efficientnet_lite0")
    parser.add_argument("--variant", default="reference")
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--patience", type=int, default=None,
                        help="also run the current code with this patience (changes results)")
    parser.add_argument("--before", default=BEFORE, help="git commit of the code to compare with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before.cached = load_before(args.before)
    settings = {"variant": args.variant, "beam_width": args.beam_width}
    adapter = load_model("demo")
    images = partsworld_inputs(adapter, max(args.images, args.resnet_images)).images
    print(f"== SAG search + graph, {args.variant} variant, beam width {args.beam_width}, 7x7 grid, "
          f"{torch.get_num_threads()} thread(s); before = {args.before}")
    table = [measure("demo CNN", adapter.model, images[: args.images], settings, args.patience)] if args.images else []
    if args.resnet_images:
        big = F.interpolate(images[: args.resnet_images], size=224, mode="bilinear", align_corners=False)
        label = "ResNet-50" if args.big_model == "resnet50" else args.big_model
        table.append(measure(f"{label} (random)", big_model(args.big_model), big, settings, args.patience))
    header = ["model", "size", "passes/img reference", "before", "after", "cpu s/img before", "after"]
    if args.patience is not None:
        header += [f"after, patience {args.patience}: passes / cpu s"]
    header += ["I-GOS map passes (cpu s)"]
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
