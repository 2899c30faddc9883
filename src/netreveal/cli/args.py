"""Arguments several commands share, declared once: the model, the database, the output folder."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netreveal.model.adapter import ModelAdapter
    from netreveal.store.db import Store


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--weights``, ``--weights-map``, ``--class-names``, ``--input-size``, ``--device``."""
    p.add_argument("--model", default="demo",
                   help="demo, a torchvision name, timm:NAME or module:factory (default: demo)")
    p.add_argument("--weights", help="local .safetensors/.pt state dict, a torchvision weight name or 'pretrained' "
                                     "(the last two download; without --weights the model has random weights)")
    p.add_argument("--weights-map", action="append", metavar="RULE",
                   help="rename the --weights file's keys (repeatable, in order): strip:PREFIX, rename:OLD=NEW "
                        "(prefix), regex:PATTERN=NEW (re.sub), @FILE (rules, one per line), or by-order alone "
                        "(pair tensors in saved order, checking shapes; prints the mapping)")
    p.add_argument("--class-names", help="text file (one name per line) or JSON list of class names")
    p.add_argument("--input-size", type=int, help="input side in pixels (default: the model's)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def load_adapter(args) -> ModelAdapter:
    """The model the ``add_model_args`` flags name; loading notes go to stderr."""
    from netreveal.model.adapter import load_model, loading_notes

    adapter = load_model(args.model, args.weights, class_names=args.class_names, input_size=args.input_size,
                         device=args.device, weights_map=args.weights_map)
    for line in loading_notes(adapter):
        print(line, file=sys.stderr)
    return adapter


def add_database_arg(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--database-url``."""
    p.add_argument("--database-url", help=help or "SQLAlchemy URL or SQLite file "
                                                  "(default: $NETREVEAL_DATABASE_URL or ./netreveal.db)")


def open_from_args(args) -> Store:
    """The store named by ``--database-url`` (or the default one)."""
    from netreveal.store.db import open_store

    return open_store(getattr(args, "database_url", None))


def add_out_args(p: argparse.ArgumentParser, *, help: str, required: bool = False,
                 default: str | None = None, replaces: str = "an earlier report") -> None:
    """``--out`` (an output folder) and ``--force`` (replace ``replaces`` there, never anything else)."""
    p.add_argument("--out", required=required, default=default, help=help)
    p.add_argument("--force", action="store_true", help=f"replace {replaces} in --out (never anything else)")


__all__ = ["add_database_arg", "add_model_args", "add_out_args", "load_adapter", "open_from_args"]
