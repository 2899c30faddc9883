"""``netreveal study create|export|import-labels|list``: studies in a database.

Handlers import their work lazily so ``netreveal --help`` stays fast.
"""

from __future__ import annotations

import argparse


def add_database_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="SQLAlchemy URL or SQLite file (default: $NETREVEAL_DATABASE_URL or ./netreveal.db)")


def add_study_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``study`` and its sub-commands to an ``argparse`` sub-parser collection."""
    study = subparsers.add_parser("study", help="create, export and import studies (a database of explanation items)")
    sub = study.add_subparsers(dest="study_command", required=True)

    create = sub.add_parser("create", help="run INV on an image folder and store the study's items and reveal frames")
    create.add_argument("--name", required=True, help="study name (letters, digits, - and _)")
    create.add_argument("--images", required=True, help="image folder (flat or class sub-folders)")
    create.add_argument("--model", default="demo", help="demo, a torchvision name, timm:NAME or module:factory (default: demo)")
    create.add_argument("--weights", help="local .safetensors/.pt state dict")
    create.add_argument("--class-names", help="text file (one name per line) or JSON list of class names")
    create.add_argument("--input-size", type=int, help="input side in pixels (default: the model's)")
    create.add_argument("--device", default="cpu")
    create.add_argument("--layers", default="last:9", help="layers to explain (default: last:9)")
    create.add_argument("--limit", type=int, help="use at most this many images")
    create.add_argument("--batch-size", type=int, default=8)
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--quiet", action="store_true", help="no progress bars")
    add_database_arg(create)

    export = sub.add_parser("export", help="write every record of a study as CSV and JSON")
    export.add_argument("--name", required=True)
    export.add_argument("--out", required=True, help="output folder")
    add_database_arg(export)

    imp = sub.add_parser("import-labels", help="load labels (guesses with free text) from a CSV file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--csv", required=True, help="CSV with columns item_id, text, step, guessed_class[, player, language]")
    add_database_arg(imp)

    listing = sub.add_parser("list", help="list the studies in a database")
    add_database_arg(listing)
    study.set_defaults(handler=run_study_command)
    return study


def run_study_command(args) -> int:
    from netreveal.store import commands

    return commands.run(args)
