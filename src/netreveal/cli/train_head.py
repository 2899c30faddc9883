"""``netreveal train-head infodisent|xnn``: train a concept model on a frozen classifier and an
image folder (one sub-folder per class), and save it for ``explain --head`` / ``--xnn``.

Bad input (missing folder, unknown kind, bad numbers, unreadable image...) is a one-line
:class:`~netreveal.errors.NetrevealError`. Training is resumable: a checkpoint is written after
every epoch (by default next to the output, removed once the model is saved) and a run started
again with the same settings continues from it. The validation accuracy of every epoch is printed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from netreveal.cli.args import add_model_args, load_adapter
from netreveal.errors import NetrevealError

KINDS = ("infodisent", "xnn")
DEFAULT_EPOCHS = {"infodisent": 10, "xnn": 20}
DEFAULT_LR = {"infodisent": 5e-3, "xnn": 3e-3}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train-head`` command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "train-head",
        help="train an InfoDisent head or an XNN on a frozen model and an image folder",
        description="Train an InfoDisent head or an XNN on a frozen model's features, from a folder "
        "with one sub-folder of images per class; save it for explain --head / --xnn.",
    )
    p.add_argument("kind", metavar="{infodisent,xnn}", help="which concept model to train")
    add_model_args(p)
    p.add_argument("--data", required=True, help="image folder with one sub-folder per class")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of images held out for validation (default: 0.1)",
    )
    p.add_argument(
        "--epochs", type=int, help="training epochs (default: 10 for infodisent, 20 for xnn)"
    )
    p.add_argument("--out", help="output file (default: ./infodisent-head.pt or ./xnn.pt)")
    p.add_argument(
        "--checkpoint-dir",
        help="where to keep the per-epoch checkpoint (default: next to --out, removed when done)",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from a checkpoint of an interrupted run (default: yes)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--layer",
        help="layer to read (default: infodisent the final feature map, xnn the classifier input)",
    )
    p.add_argument("--lr", type=float, help="learning rate (default: 5e-3 infodisent, 3e-3 xnn)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--prototypes",
        type=int,
        default=5,
        help="prototypes / top images kept per unit (default: 5)",
    )
    p.add_argument(
        "--x-features", type=int, default=5, help="xnn: number of x-features (default: 5)"
    )
    p.add_argument(
        "--weight-l1",
        type=float,
        default=0.0,
        help="infodisent: L1 on class weights, for sparser classes (default: 0)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (epoch lines are still printed)"
    )
    p.set_defaults(handler=cmd_train_head)
    return p


def _check_args(args) -> None:
    if args.kind not in KINDS:
        raise NetrevealError(f"unknown kind {args.kind!r}; choose infodisent or xnn")
    data = Path(args.data)
    if not data.is_dir():
        raise NetrevealError(f"--data folder not found: {data}")
    if args.epochs is not None and args.epochs < 1:
        raise NetrevealError("--epochs must be at least 1")
    if not 0 < args.val_fraction < 1:
        raise NetrevealError("--val-fraction must be between 0 and 1")
    if args.batch_size < 1 or args.x_features < 1 or args.prototypes < 0:
        raise NetrevealError("--batch-size and --x-features must be >= 1, --prototypes >= 0")
    if args.lr is not None and args.lr <= 0:
        raise NetrevealError("--lr must be positive")
    if args.weight_l1 < 0:
        raise NetrevealError("--weight-l1 must be >= 0")
    if args.out is not None and Path(args.out).is_dir():
        raise NetrevealError(f"--out is a folder, not a file: {args.out}")


class _EpochLines(logging.Handler):
    """Prints the training loop's per-epoch lines (used when progress bars are off)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " epoch " in message:
            print(message, flush=True)


def cmd_train_head(args) -> int:
    """Run ``netreveal train-head``; returns the exit code (0)."""
    from netreveal.concepts.training import ImageFolderData, split_dataset

    _check_args(args)
    kind = args.kind
    out = Path(args.out or ("infodisent-head.pt" if kind == "infodisent" else "xnn.pt"))
    adapter = load_adapter(args)
    root = Path(args.data)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    aligned = bool(folders) and set(folders) <= set(adapter.class_names)
    data = ImageFolderData(
        root, adapter.preprocess, class_names=adapter.class_names if aligned else None
    )
    if len(data) < 2:
        raise NetrevealError(
            f"{root} holds {len(data)} image(s); need at least 2 to train and validate"
        )
    train, val = split_dataset(data, args.val_fraction, args.seed)
    print(
        f"{kind}: {len(train)} training / {len(val)} validation images, {len(data.class_names)} classes"
        + ("" if aligned else " (folder names are not the model's classes)"),
        flush=True,
    )

    own_ckpt = args.checkpoint_dir is None
    ckpt = (
        Path(args.checkpoint_dir)
        if args.checkpoint_dir
        else out.with_name(out.name + ".checkpoint")
    )
    epochs = args.epochs or DEFAULT_EPOCHS[kind]
    lr = args.lr or DEFAULT_LR[kind]
    common = {
        "layer": args.layer,
        "epochs": epochs,
        "lr": lr,
        "batch_size": args.batch_size,
        "checkpoint_dir": ckpt,
        "resume": args.resume,
        "seed": args.seed,
        "progress": not args.quiet,
    }
    source = {
        "kind": "folder",
        "root": str(root.resolve()),
        "image_size": [adapter.input_size] * 2,
        "resize_ratio": float(adapter.resize_ratio),
    }
    backbone = {"model": str(args.model), "weights": str(args.weights) if args.weights else None}

    log = logging.getLogger("netreveal.concepts")
    handler, level = _EpochLines(), log.level
    if args.quiet:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        if kind == "infodisent":
            from netreveal.concepts.infodisent import accuracy, save_head, train_infodisent

            names = adapter.class_names if aligned else data.class_names
            head = train_infodisent(
                adapter.model,
                train,
                val,
                weight_l1=args.weight_l1,
                num_classes=len(names),
                class_names=list(names),
                prototypes=args.prototypes,
                **common,
            )
            scores = accuracy(head, adapter.model, val, batch_size=args.batch_size)
            head.info.update(
                source=source, backbone=backbone, evaluation={"split": "validation", **scores}
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            save_head(head, out)
            line = f"validation accuracy: head {scores['head_accuracy']:.4f}"
            if aligned:
                line += f", model {scores['backbone_accuracy']:.4f}, agreement {scores['agreement']:.4f}"
        else:
            from netreveal.concepts.xnn import faithfulness, save_xnn, train_xnn

            xnn = train_xnn(
                adapter.model,
                train,
                val,
                num_features=args.x_features,
                top_images=args.prototypes,
                **common,
            )
            xnn.class_names = list(adapter.class_names)
            scores = faithfulness(xnn, adapter.model, val, batch_size=args.batch_size)
            xnn.info.update(
                source=source, backbone=backbone, evaluation={"split": "validation", **scores}
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            save_xnn(xnn, out)
            line = (
                f"validation faithfulness (agreement with the model): {scores['faithfulness']:.4f}"
            )
            if aligned:
                line += f", XNN accuracy {scores['xnn_accuracy']:.4f}, model {scores['model_accuracy']:.4f}"
    finally:
        if args.quiet:
            log.removeHandler(handler)
            log.setLevel(level)
    if own_ckpt:
        shutil.rmtree(ckpt, ignore_errors=True)
    print(line)
    print(f"wrote {out.resolve()}")
    sys.stdout.flush()
    return 0
