"""Train the demo's concept models on the shipped demo CNN (CPU, reproducible) and write them to
the package.

    python scripts/train_demo_heads.py               # the shipped settings
    python scripts/train_demo_heads.py --no-write    # train and report only

Both models read the frozen demo CNN. Training images are parts-world ``split="train"`` indices
0..N-1 rendered with the demo model's own parts-world settings (so prototype index i *is*
``PartsWorld(**settings, split="train").sample(i)``); the per-epoch check uses ``split="val"``;
accuracy, agreement and faithfulness are measured on ``split="test"`` indices 0..M-1, which
training never sees.

Written to ``src/netreveal/assets``: ``demo_infodisent.pt`` (the head with its prototypes) and
``demo_xnn.pt`` (the XNN with its top-activating images), netreveal result files loaded with
``weights_only=True``. Each records ``info["source"]`` (how to render its training images again),
``info["backbone"]`` (SHA-256 of the demo weights) and ``info["evaluation"]``. To keep the files
small and byte-for-byte reproducible, prototype maps are stored as float16 and wall-clock times are
left out.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from netreveal.concepts import (
    accuracy,
    explain_infodisent,
    explain_xnn,
    faithfulness,
    pull_away,
    save_head,
    save_xnn,
    train_infodisent,
    train_xnn,
)
from netreveal.concepts.demo_assets import DEMO_INFODISENT, DEMO_XNN
from netreveal.data.partsworld import PartsWorld
from netreveal.model.demo import DEMO_WEIGHTS, load_demo_model


class Rendered(Dataset):
    """Parts-world images ``0..n-1`` of one split, rendered once and kept as uint8."""

    def __init__(self, world: PartsWorld, n: int, desc: str):
        self.images = torch.empty(n, 3, world.size, world.size, dtype=torch.uint8)
        for i in tqdm(range(n), desc=desc, mininterval=2.0):
            self.images[i] = (world[i][0] * 255).round().to(torch.uint8)
        self.targets = [world.label_of(i) for i in range(n)]
        self.class_names = list(world.class_names)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float() / 255.0, self.targets[i]

    def batch(self, n: int) -> torch.Tensor:
        return self.images[:n].float() / 255.0


def make_world(settings: dict, split: str, n: int) -> PartsWorld:
    """The parts world with the demo model's settings."""
    world = PartsWorld(
        size=settings["size"],
        seed=settings["seed"],
        split=split,
        length=n,
        max_distractors=settings["max_distractors"],
        scale=tuple(settings["scale"]),
        clutter=settings["clutter"],
        classes=settings["classes"],
    )
    if world.settings() != settings:
        raise SystemExit(
            "parts-world settings do not round-trip; the demo metadata is inconsistent"
        )
    return world


def without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", type=int, default=6000, help="training images (train split)")
    p.add_argument("--val", type=int, default=1000, help="per-epoch check images (val split)")
    p.add_argument("--test", type=int, default=2000, help="held-out images (test split)")
    p.add_argument("--epochs", type=int, default=12, help="InfoDisent epochs")
    p.add_argument("--lr", type=float, default=5e-3, help="InfoDisent learning rate")
    p.add_argument("--tau", type=float, default=0.5, help="InfoDisent Gumbel temperature")
    p.add_argument(
        "--l1", type=float, default=5e-3, help="InfoDisent class-weight L1 (sparser classes)"
    )
    p.add_argument("--xnn-epochs", type=int, default=30)
    p.add_argument("--x-features", type=int, default=5)
    p.add_argument("--prototypes", type=int, default=5, help="prototypes / top images per unit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a busy machine)")
    p.add_argument("--no-write", action="store_true", help="do not write into the package")
    args = p.parse_args(argv)

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    model, meta = load_demo_model()
    settings = meta["parts_world"]
    train = Rendered(make_world(settings, "train", args.train), args.train, "render train")
    val = Rendered(make_world(settings, "val", args.val), args.val, "render val")
    test = Rendered(make_world(settings, "test", args.test), args.test, "render test")
    print(
        f"rendered {args.train} / {args.val} / {args.test} images in {time.time() - start:.0f} s",
        flush=True,
    )

    backbone = {
        "name": "demo",
        "file": DEMO_WEIGHTS.name,
        "sha256": hashlib.sha256(DEMO_WEIGHTS.read_bytes()).hexdigest(),
    }
    source = {
        "kind": "partsworld",
        "settings": settings,
        "split": "train",
        "start": 0,
        "count": args.train,
    }
    versions = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }

    head = train_infodisent(
        model,
        train,
        val,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=64,
        seed=args.seed,
        tau=args.tau,
        weight_l1=args.l1,
        prototypes=args.prototypes,
        progress=True,
    )
    scores = accuracy(head, model, test, batch_size=250)
    shown = explain_infodisent(head, model, test.batch(500), batch_size=250)
    head_eval = {
        "split": "test",
        "images": args.test,
        **scores,
        "mean_explanation_size": float(shown.sizes.float().mean()),
        "nonzero_class_weights": float((head.class_weights() > 0).float().mean()),
    }
    head.info = {k: v for k, v in head.info.items() if not k.endswith("_seconds")}
    head.info.update(
        source=source,
        backbone=backbone,
        evaluation=head_eval,
        threads=args.threads,
        tau=args.tau,
        versions=versions,
    )
    head.history = without_times(head.history)
    head.prototypes.maps = head.prototypes.maps.half()

    xnn = train_xnn(
        model,
        train,
        val,
        num_features=args.x_features,
        epochs=args.xnn_epochs,
        batch_size=64,
        seed=args.seed,
        top_images=args.prototypes,
        progress=True,
    )
    faith = faithfulness(xnn, model, test, batch_size=250)
    xs = explain_xnn(xnn, model, test.batch(500), batch_size=250)
    xnn_eval = {
        "split": "test",
        "images": args.test,
        **faith,
        "mean_active_xfeatures": float((xs.xfeatures > 0).float().sum(1).mean()),
        "pull_away": float(pull_away(xnn.bases.detach())),
    }
    xnn.info = {k: v for k, v in xnn.info.items() if not k.endswith("_seconds")}
    xnn.info.update(
        source=source,
        backbone=backbone,
        evaluation=xnn_eval,
        threads=args.threads,
        versions=versions,
    )
    xnn.history = without_times(xnn.history)

    print()
    print(f"{'measure (test split, ' + str(args.test) + ' images)':<46} {'value':>8}")
    print("-" * 55)
    rows = [
        ("backbone accuracy", scores["backbone_accuracy"]),
        ("InfoDisent head accuracy", scores["head_accuracy"]),
        ("  change (points)", 100 * (scores["head_accuracy"] - scores["backbone_accuracy"])),
        ("  agreement with the backbone", scores["agreement"]),
        ("  mean explanation size (components)", head_eval["mean_explanation_size"]),
        ("  share of class weights > 0", head_eval["nonzero_class_weights"]),
        ("XNN faithfulness (argmax agrees)", faith["faithfulness"]),
        ("XNN accuracy", faith["xnn_accuracy"]),
        ("  mean active x-features", xnn_eval["mean_active_xfeatures"]),
        ("  pull-away (mean cos^2 of bases)", xnn_eval["pull_away"]),
    ]
    for label, value in rows:
        print(f"{label:<46} {value:>8.4f}")
    if not args.no_write:
        for path, writer, obj in ((DEMO_INFODISENT, save_head, head), (DEMO_XNN, save_xnn, xnn)):
            writer(obj, path)
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"total {(time.time() - start) / 60:.1f} min")
    return {"infodisent": head_eval, "xnn": xnn_eval}


if __name__ == "__main__":
    main()
    sys.exit(0)
