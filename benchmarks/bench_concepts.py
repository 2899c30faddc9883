"""Concept models on the parts world with the demo model: InfoDisent and XNN side by side.

Measured in one run, on the same images:
- accuracy on the held-out parts-world split: the frozen backbone vs its InfoDisent head
  (target: within 3 points);
- part purity (how often a component's strongest cell falls on one part type, over its top-10
  test images) of InfoDisent's components vs the backbone's raw channels at the same layer (U = I);
- XNN faithfulness: agreement of the prediction reconstructed from 5 x-features with the model's
  (target: >= 95 %);
- training time per epoch (features cached once, time shown separately) and explanation sizes.

    python benchmarks/bench_concepts.py            # defaults: 4000 train / 800 val / 800 test
    python benchmarks/bench_concepts.py --quick    # a smaller, faster run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from netreveal.concepts import (
    accuracy,
    explain_infodisent,
    explain_xnn,
    faithfulness,
    find_classifier,
    pull_away,
    purity_vs_channels,
    train_infodisent,
    train_xnn,
)
from netreveal.data.partsworld import PartsWorld


def load_backbone(weights: str | None):
    """The shipped demo model, or a DemoCNN with the given weights file."""
    if weights is None:
        from netreveal.model.demo import load_demo_model

        model, meta = load_demo_model()
        return (
            model,
            f"demo model (held-out accuracy {meta.get('held_out_accuracy')})",
            int(meta["input_size"]),
        )
    from safetensors.torch import load_file

    from netreveal.model.demo import DemoCNN

    model = DemoCNN()
    model.load_state_dict(load_file(weights))
    return model.eval(), f"DemoCNN from {weights}", 64


class Cached(torch.utils.data.Dataset):
    """Rendered once: the parts world renders each image on the fly, training reads them often."""

    def __init__(self, world: PartsWorld, n: int):
        self.images = torch.stack([world[i][0] for i in range(n)])
        self.targets = [world.label_of(i) for i in range(n)]
        self.class_names = world.class_names

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--val", type=int, default=800)
    p.add_argument("--test", type=int, default=800)
    p.add_argument("--purity-images", type=int, default=400)
    p.add_argument("--epochs", type=int, default=12, help="InfoDisent epochs")
    p.add_argument("--xnn-epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument(
        "--l1", type=float, default=5e-3, help="weight L1 of the sparse InfoDisent variant"
    )
    p.add_argument("--x-features", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--weights",
        default=None,
        help="DemoCNN weights (.safetensors) instead of the shipped demo model",
    )
    p.add_argument(
        "--quick", action="store_true", help="1000 train / 400 val / 400 test, fewer epochs"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.val, args.test, args.purity_images = 1000, 400, 400, 200
        args.epochs, args.xnn_epochs = 6, 15
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model, model_name, size = load_backbone(args.weights)
    t0 = time.perf_counter()
    train = Cached(PartsWorld(size=size, seed=0, split="train"), args.train)
    val = Cached(PartsWorld(size=size, seed=0, split="val"), args.val)
    test_world = PartsWorld(size=size, seed=0, split="test")
    test = Cached(test_world, args.test)
    samples = [test_world.sample(i) for i in range(args.purity_images)]
    print(
        f"backbone: {model_name}; data rendered in {time.perf_counter() - t0:.1f} s "
        f"({args.train} train / {args.val} val / {args.test} test images, {size} px)",
        flush=True,
    )

    heads = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, l1 in (("InfoDisent", 0.0), (f"InfoDisent L1 {args.l1:g}", args.l1)):
            heads[name] = train_infodisent(
                model,
                train,
                val,
                epochs=args.epochs,
                lr=args.lr,
                batch_size=64,
                seed=args.seed,
                tau=args.tau,
                weight_l1=l1,
                checkpoint_dir=f"{tmp}/{len(heads)}",
                prototypes=5,
            )
        xnn = train_xnn(
            model,
            train,
            val,
            num_features=args.x_features,
            epochs=args.xnn_epochs,
            batch_size=64,
            seed=args.seed,
            checkpoint_dir=f"{tmp}/xnn",
        )

    _, classifier = find_classifier(model, train.images[:1])
    images = torch.stack([s.image for s in samples])
    masks, parts = [s.masks for s in samples], [s.parts for s in samples]
    cols: dict[str, dict[str, str]] = {"backbone": {}}
    for name, head in heads.items():
        acc = accuracy(head, model, test, batch_size=128)
        pur = purity_vs_channels(
            head, model, images, masks, parts, top=10, channel_weights=classifier.weight
        )
        ex = explain_infodisent(head, model, test.images[:200], batch_size=100)
        cols["backbone"].update(
            {
                "accuracy": f"{acc['backbone_accuracy']:.3f}",
                "purity_all": f"{pur['channels']:.3f} ({head.channels})",
                "purity_top": f"{pur['channels_top']:.3f} ({pur['channels_top_count']})",
            }
        )
        cols[name] = {
            "accuracy": f"{acc['head_accuracy']:.3f}",
            "delta": f"{100 * (acc['head_accuracy'] - acc['backbone_accuracy']):+.1f}",
            "agreement": f"{acc['agreement']:.3f}",
            "purity_all": f"{pur['components']:.3f} ({head.channels})",
            "purity_top": f"{pur['components_top']:.3f} ({pur['components_top_count']})",
            "purity_both": f"{pur['components_both_sides']:.3f}",
            "size": f"{ex.sizes.float().mean():.2f}",
            "nonzero": f"{(head.class_weights() > 0).float().mean():.2f}",
            "cache": f"{head.info['cache_seconds']:.1f} s",
            "epoch": f"{statistics.mean(h['seconds'] for h in head.history):.2f} s",
            "epochs": str(args.epochs),
        }
    faith = faithfulness(xnn, model, test, batch_size=128)
    xs = explain_xnn(xnn, model, test.images[:200], batch_size=100)
    cols["XNN"] = {
        "accuracy": f"{faith['xnn_accuracy']:.3f}",
        "delta": f"{100 * (faith['xnn_accuracy'] - faith['model_accuracy']):+.1f}",
        "agreement": f"{faith['faithfulness']:.3f}",
        "size": f"{(xs.xfeatures > 0).float().sum(1).mean():.2f}",
        "pull": f"{pull_away(xnn.bases.detach()).item():.3f}",
        "cache": f"{xnn.info['cache_seconds']:.1f} s",
        "epoch": f"{statistics.mean(h['seconds'] for h in xnn.history):.2f} s",
        "epochs": str(args.xnn_epochs),
    }
    rows = [
        ("accuracy (held-out split)", "accuracy"),
        ("  change vs backbone (points; target >= -3)", "delta"),
        ("agreement with the backbone (XNN: faithfulness, target >= 0.95)", "agreement"),
        ("part purity, all units (count)", "purity_all"),
        ("part purity, each class's top-5 units (count)", "purity_top"),
        ("part purity, both signs of each component", "purity_both"),
        ("explanation size (components > 0.2 x top; XNN: active x-features)", "size"),
        ("share of class weights > 0", "nonzero"),
        ("XNN pull-away (mean cos^2 of bases)", "pull"),
        ("feature caching, once (train + val)", "cache"),
        ("training time per epoch", "epoch"),
        ("epochs", "epochs"),
    ]
    names = list(cols)
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(n), *(len(cols[n].get(key, "")) for _, key in rows)) for n in names]
    print()
    print(f"{'measure':<{w0}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths)))
    print("-" * (w0 + 2 + sum(widths) + 2 * len(widths)))
    for label, key in rows:
        print(
            f"{label:<{w0}}  "
            + "  ".join(f"{cols[n].get(key, '-'):>{w}}" for n, w in zip(names, widths))
        )
    print(
        f"\nXNN: {args.x_features} x-features, {xnn.faithful} mode; purity over the top-10 of "
        f"{args.purity_images} held-out images per unit; backbone units = raw channels at {heads['InfoDisent'].layer}, "
        "top units by the backbone's own classifier weights."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
