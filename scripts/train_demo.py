"""Train the shipped demo model on the parts world (CPU, reproducible) and write it to the package.

    python scripts/train_demo.py                 # the shipped settings
    python scripts/train_demo.py --no-write      # train and report only

Training images are parts-world ``split="train"`` indices 0..N-1 (rendered once, kept as uint8),
augmented with random flips and 90-degree rotations; the per-epoch check uses ``split="val"``; the
reported held-out accuracy uses ``split="test"`` indices 0..M-1, which nothing else touches. The
network is trained with BatchNorm, which is then folded into the convs; the fused model is what is
evaluated and saved (``demo_cnn.safetensors`` + ``demo_cnn.json`` in ``src/netreveal/assets``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from netreveal.data.partsworld import PartsWorld
from netreveal.model.demo import DEMO_META, DEMO_WEIGHTS, DemoCNN, fuse_batch_norm


def render(world: PartsWorld, n: int, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images 0..n-1 of the world's split as uint8 (n, 3, H, W) and their labels."""
    images = torch.empty(n, 3, world.size, world.size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    for i in tqdm(range(n), desc=desc, mininterval=2.0):
        image, label = world[i]
        images[i] = (image * 255).round().to(torch.uint8)
        labels[i] = label
    return images, labels


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random element of the dihedral group (flips, 90-degree turns) per image."""
    bits = torch.rand(x.shape[0], 3, generator=generator) < 0.5
    x = torch.where(bits[:, 0, None, None, None], x.flip(-1), x)
    x = torch.where(bits[:, 1, None, None, None], x.flip(-2), x)
    return torch.where(bits[:, 2, None, None, None], x.transpose(-1, -2), x)


@torch.no_grad()
def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].float() / 255.0
        correct += (model(x).argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / len(images)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed (init, shuffling, augmentation)"
    )
    parser.add_argument("--world-seed", type=int, default=0, help="parts-world seed")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=12_000)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--heldout-images", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a busy shared 2-core machine; 2 when it is idle)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not write the weights into the package"
    )
    args = parser.parse_args(argv)

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    def world(split: str, n: int) -> PartsWorld:
        return PartsWorld(size=args.size, seed=args.world_seed, split=split, length=n)

    train_world = world("train", args.train_images)
    x_train, y_train = render(train_world, args.train_images, "render train")
    x_val, y_val = render(world("val", args.val_images), args.val_images, "render val")
    x_test, y_test = render(
        world("test", args.heldout_images), args.heldout_images, "render held-out"
    )
    pixels = x_train[:2000].float() / 255.0
    mean = pixels.mean(dim=(0, 2, 3)).tolist()
    std = pixels.std(dim=(0, 2, 3)).tolist()
    render_time = time.time() - start

    model = DemoCNN(num_classes=train_world.num_classes, batch_norm=True, mean=mean, std=std)
    model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = args.train_images // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(args.train_images, generator=generator)
        total, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", mininterval=2.0)
        for step in bar:
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            x = (
                augment(x_train[idx], generator)
                .float()
                .div_(255.0)
                .contiguous(memory_format=torch.channels_last)
            )
            y = y_train[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{total / seen:.4f}")
        val = accuracy(model, x_val, y_val)
        record = {"epoch": epoch, "loss": total / seen, "train_acc": correct / seen, "val_acc": val}
        history.append(record)
        print(
            f"epoch {epoch:2d}  loss {record['loss']:.4f}  train acc {record['train_acc']:.4f}  val acc {val:.4f}"
        )

    bn_acc = accuracy(model, x_test, y_test)
    fused = fuse_batch_norm(model.to(memory_format=torch.contiguous_format)).eval()
    test_acc = accuracy(fused, x_test, y_test)
    state = {k: v.detach().contiguous().float() for k, v in fused.state_dict().items()}
    elapsed = time.time() - start
    print(
        f"held-out accuracy ({args.heldout_images} parts-world test images): {test_acc:.4f} "
        f"(before BatchNorm folding {bn_acc:.4f}); time {elapsed / 60:.1f} min"
    )

    meta = {
        "name": "netreveal demo CNN (parts world)",
        "class_names": train_world.class_names,
        "class_parts": {k: list(v) for k, v in train_world.classes.items()},
        "input_size": args.size,
        "mean": mean,
        "std": std,
        "held_out_accuracy": test_acc,
        "held_out": {
            "split": "test",
            "indices": [0, args.heldout_images],
            "images": args.heldout_images,
        },
        "architecture": {
            "type": "DemoCNN",
            "widths": list(fused.widths),
            "depths": list(fused.depths),
            "batch_norm_folded": True,
            "conv_layers": sum(fused.depths),
        },
        "parts_world": train_world.settings(),
        "training": {
            "seed": args.seed,
            "train_split": "train",
            "train_indices": [0, args.train_images],
            "val_images": args.val_images,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": "OneCycleLR(pct_start=0.2)",
            "augmentation": "random flips and 90-degree rotations",
            "threads": args.threads,
            "render_seconds": round(render_time, 1),
            "total_seconds": round(elapsed, 1),
            "history": history,
        },
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    if not args.no_write:
        DEMO_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        save_file(
            state, str(DEMO_WEIGHTS), metadata={"format": "netreveal-demo-cnn", "version": "1"}
        )
        Path(DEMO_META).write_text(json.dumps(meta, indent=1) + "\n")
        print(f"wrote {DEMO_WEIGHTS} ({DEMO_WEIGHTS.stat().st_size / 1e6:.2f} MB) and {DEMO_META}")
    return meta


if __name__ == "__main__":
    main()
