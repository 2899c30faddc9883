"""``netreveal study create|export|import-labels|list|analyse``: studies in a database.

``study create`` makes a reveal study (INV items and reveal frames, the default) or, with
``--kind evaluation --methods ...``, an evaluation study of explanation methods (ratings and
forward simulation, :mod:`netreveal.store.evaluation`); ``study analyse`` analyses the latter.

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

    create = sub.add_parser("create", help="run INV on an image folder and store the study's items and reveal frames "
                                           "(or, with --kind evaluation, an evaluation study of explanation methods)")
    create.add_argument("--name", required=True, help="study name (letters, digits, - and _)")
    create.add_argument("--kind", choices=("reveal", "evaluation"), default="reveal",
                        help="reveal: the reveal game and naming studio (default); evaluation: people rate the "
                             "explanations of --methods and predict the model with and without them")
    create.add_argument("--methods", help="evaluation: comma-separated heatmap methods, e.g. gradcam,inv,lime,rise")
    create.add_argument("--forward", type=int, help="evaluation: images used for forward simulation (default: half)")
    create.add_argument("--attention-every", type=int, default=8,
                        help="evaluation: one attention check per this many questions (0: none; default 8)")
    create.add_argument("--options", type=int, default=4, help="evaluation: choices per forward question (default 4)")
    create.add_argument("--images", required=True, help="image folder (flat or class sub-folders)")
    create.add_argument("--model", default="demo", help="demo, a torchvision name, timm:NAME or module:factory (default: demo)")
    create.add_argument("--weights", help="local .safetensors/.pt state dict")
    create.add_argument("--class-names", help="text file (one name per line) or JSON list of class names")
    create.add_argument("--input-size", type=int, help="input side in pixels (default: the model's)")
    create.add_argument("--device", default="cpu")
    create.add_argument("--layers", default="last:9", help="layers INV explains (default: last:9)")
    create.add_argument("--limit", type=int, help="use at most this many images")
    create.add_argument("--batch-size", type=int, default=8)
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--quiet", action="store_true", help="no progress bars")
    add_database_arg(create)

    export = sub.add_parser("export", help="write every record of a study as CSV and JSON")
    export.add_argument("--name", required=True)
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--force", action="store_true", help="replace an earlier export in --out (never anything else)")
    add_database_arg(export)

    imp = sub.add_parser("import-labels", help="load labels (guesses with free text) from a CSV file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--csv", required=True, help="CSV with columns item_id, text, step, guessed_class[, player, language]")
    add_database_arg(imp)

    listing = sub.add_parser("list", help="list the studies in a database")
    add_database_arg(listing)

    analyse = sub.add_parser("analyse", help="analyse an evaluation study: HTML report, analysis JSON, raw CSV")
    analyse.add_argument("--name", required=True)
    analyse.add_argument("--out", required=True, help="output folder")
    analyse.add_argument("--force", action="store_true", help="replace an earlier report in --out (never anything else)")
    analyse.add_argument("--finished-only", action="store_true", help="only participants who answered every question")
    analyse.add_argument("--confidence", type=float, default=0.95, help="confidence of the intervals (default 0.95)")
    analyse.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)")
    analyse.add_argument("--title", help="report title (default: Evaluation study NAME)")
    add_database_arg(analyse)
    study.set_defaults(handler=run_study_command)
    return study


def run_study_command(args) -> int:
    from netreveal.store import commands

    return commands.run(args)
