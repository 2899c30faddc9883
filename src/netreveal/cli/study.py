"""``netreveal study create|export|import-labels|list|analyse``: studies in a database.

``study create`` makes a reveal study (INV items and reveal frames, the default) or, with
``--kind evaluation --methods ...``, an evaluation study of explanation methods (ratings and
forward simulation, :mod:`netreveal.studies.evaluation`); ``study analyse`` analyses the latter.

Bad input — a missing or empty image folder, a bad database URL, an unknown study, a bad CSV —
is a :class:`NetrevealError` (the CLI prints one line and exits with 2), raised before anything
is written.
"""

from __future__ import annotations

import argparse

from netreveal.cli.args import (
    add_database_arg,
    add_model_args,
    add_out_args,
    load_adapter,
    open_from_args,
)
from netreveal.errors import NetrevealError


def add_parser(subparsers) -> argparse.ArgumentParser:
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
    add_model_args(create)
    create.add_argument("--layers", default="auto:9",
                        help="layers INV explains (default: auto:9, the model's nine default layers)")
    create.add_argument("--limit", type=int, help="use at most this many images")
    create.add_argument("--batch-size", type=int, default=8,
                        help="images per batch: read, explained and stored (one transaction) together (default: 8)")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--resume", action="store_true",
                        help="continue the killed creation of study --name after the batches it stored")
    create.add_argument("--loader-workers", type=int, default=0,
                        help="processes that read images (default: 0, read in the main process)")
    create.add_argument("--quiet", action="store_true", help="no progress bars")
    add_database_arg(create)

    export = sub.add_parser("export", help="write every record of a study as CSV and JSON")
    export.add_argument("--name", required=True)
    add_out_args(export, required=True, help="output folder", replaces="an earlier export")
    add_database_arg(export)

    imp = sub.add_parser("import-labels", help="load labels (guesses with free text) from a CSV file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--csv", required=True,
                     help="CSV with columns item_id, text, step, guessed_class[, player, language]")
    add_database_arg(imp)

    listing = sub.add_parser("list", help="list the studies in a database")
    add_database_arg(listing)

    analyse = sub.add_parser("analyse", help="analyse an evaluation study: HTML report, analysis JSON, raw CSV")
    analyse.add_argument("--name", required=True)
    add_out_args(analyse, required=True, help="output folder")
    analyse.add_argument("--finished-only", action="store_true", help="only participants who answered every question")
    analyse.add_argument("--confidence", type=float, default=0.95, help="confidence of the intervals (default 0.95)")
    analyse.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)")
    analyse.add_argument("--title", help="report title (default: Evaluation study NAME)")
    add_database_arg(analyse)
    study.set_defaults(handler=run)
    return study


def run(args) -> int:
    """Run the ``study`` sub-command named by ``args.study_command``."""
    handlers = {"create": create, "export": export, "import-labels": import_labels, "list": listing,
                "analyse": analyse}
    handler = handlers.get(args.study_command)
    if handler is None:
        raise NetrevealError(f"unknown study command {args.study_command!r}")
    return handler(args)


def _model_and_images(store, args):
    """The model and the images of the new study ``args.name`` (an error if the name is taken)."""
    from netreveal.pipeline import read_folder
    from netreveal.store import studies

    if studies.study_exists(store, args.name):
        raise NetrevealError(f"study {args.name!r} already exists in {store.url}")
    adapter = load_adapter(args)
    return adapter, read_folder(adapter, args.images, args.limit)


def create(args) -> int:
    """``study create``: INV on an image folder, stored with reveal frames (or an evaluation study)."""
    from netreveal.data.images import list_images
    from netreveal.store import studies

    if getattr(args, "kind", "reveal") == "evaluation":
        return create_evaluation(args)
    if getattr(args, "methods", None) or getattr(args, "forward", None) is not None:
        raise NetrevealError("--methods and --forward are for evaluation studies (--kind evaluation)")
    studies.validate_study_name(args.name)
    if args.batch_size < 1:
        raise NetrevealError("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise NetrevealError("--limit must be at least 1")
    if args.loader_workers < 0:
        raise NetrevealError(f"--loader-workers must be at least 0, got {args.loader_workers}")
    list_images(args.images)  # a missing or empty folder fails before the database is touched
    store = open_from_args(args)
    try:
        from netreveal.data.sources import FolderSource
        from netreveal.studies.inv_study_batches import create_study_in_batches

        if not args.resume and studies.study_exists(store, args.name):
            raise NetrevealError(f"study {args.name!r} already exists in {store.url}")
        adapter = load_adapter(args)
        source = FolderSource.from_folder(args.images, args.limit)
        study_id = create_study_in_batches(store, args.name, adapter, source, layers=args.layers, seed=args.seed,
                                           batch_size=args.batch_size, progress=not args.quiet, resume=args.resume,
                                           loader_workers=args.loader_workers)
        summary = next(s for s in studies.list_studies(store) if s["id"] == study_id)
        print(f"created study {args.name!r} (id {study_id}) in {store.url}: "
              f"{summary['images']} images, {summary['items']} items")
    finally:
        store.close()
    return 0


def create_evaluation(args) -> int:
    """``study create --kind evaluation``: run the methods, render their explanations, store the design."""
    from netreveal.data.images import list_images
    from netreveal.methods import get_methods
    from netreveal.store import studies
    from netreveal.studies.evaluation import create_evaluation_study

    studies.validate_study_name(args.name)
    if not args.methods:
        raise NetrevealError("an evaluation study needs --methods (e.g. gradcam,inv,lime,rise)")
    methods = get_methods(args.methods)
    without = [m.name for m in methods if m.heatmaps is None]
    if without:
        raise NetrevealError(f"method {without[0]!r} gives no heatmap to show; choose heatmap methods")
    if len({m.name for m in methods}) != len(methods):
        raise NetrevealError("--methods lists a method twice")
    if args.batch_size < 1:
        raise NetrevealError("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 2:
        raise NetrevealError("--limit must be at least 2 (one image to rate, one to simulate)")
    if args.forward is not None and args.forward < 0:
        raise NetrevealError("--forward must be 0 or more")
    if args.attention_every < 0:
        raise NetrevealError("--attention-every must be 0 or more")
    if args.options < 2:
        raise NetrevealError("--options must be at least 2")
    list_images(args.images)  # a missing or empty folder fails before the database is touched
    store = open_from_args(args)
    try:
        adapter, inputs = _model_and_images(store, args)
        study_id = create_evaluation_study(
            store, args.name, adapter, inputs, [m.name for m in methods], n_forward=args.forward, seed=args.seed,
            attention_every=args.attention_every, n_options=args.options, batch_size=args.batch_size,
            layers=args.layers, progress=not args.quiet)
        kinds = _question_kinds(store, study_id)
        print(f"created evaluation study {args.name!r} (id {study_id}) in {store.url}: {len(inputs.keys)} images, "
              f"{sum(kinds.values())} questions ({', '.join(f'{n} {k}' for k, n in kinds.items())}); "
              f"methods {', '.join(m.name for m in methods)}")
    finally:
        store.close()
    return 0


def _question_kinds(store, study_id: int) -> dict[str, int]:
    from netreveal.store.evaluation import question_counts

    rows = question_counts(store, study_id)
    return {k: rows[k] for k in ("rating", "forward", "attention", "comment") if k in rows}


def _study_kind(store, name: str) -> str:
    from netreveal.store.studies import study_kind

    return study_kind(store, name) or "reveal"  # an unknown name: the reveal exporter names the known studies


def analyse(args) -> int:
    """``study analyse``: the analysis of an evaluation study as an HTML report with its data."""
    from netreveal.studies.evaluation import analyse_study

    if not 0 < args.confidence < 1 or not 0 < args.alpha < 1:
        raise NetrevealError("--confidence and --alpha must lie strictly between 0 and 1")
    store = open_from_args(args)
    try:
        analysis, index = analyse_study(store, args.name, args.out, finished_only=args.finished_only,
                                        confidence=args.confidence, alpha=args.alpha, title=args.title,
                                        force=args.force)
    finally:
        store.close()
    print(f"analysed {len(analysis.participants)} participants ({len(analysis.excluded)} excluded by attention "
          f"checks), {len(analysis.responses)} responses")
    for score in analysis.scores:
        print(f"  {score.scale:<18} {score.method:<12} mean {score.mean:.2f}  "
              f"{analysis.confidence:.0%} CI [{score.ci_low:.2f}, {score.ci_high:.2f}]  n={score.n}")
    print(index.resolve())
    return 0


def export(args) -> int:
    """``study export``: every record of a study as CSV and JSON (with its pictures)."""

    store = open_from_args(args)
    try:
        if _study_kind(store, args.name) == "evaluation":
            from netreveal.studies.evaluation import export_evaluation

            out = export_evaluation(store, args.name, args.out, force=args.force)
        else:
            from netreveal.studies.export import export_study

            out = export_study(store, args.name, args.out, force=args.force)
    finally:
        store.close()
    print(out.resolve())
    return 0


def import_labels(args) -> int:
    """``study import-labels``: guesses with free text from a CSV file."""
    from netreveal.studies.label_import import import_labels as import_label_file

    store = open_from_args(args)
    try:
        count = import_label_file(store, args.name, args.csv)
    finally:
        store.close()
    print(f"imported {count} label{'s' if count != 1 else ''} into study {args.name!r}")
    return 0


def listing(args) -> int:
    """``study list``: one line per study."""
    from netreveal.store import studies

    store = open_from_args(args)
    try:
        rows = studies.list_studies(store)
        url = store.url
    finally:
        store.close()
    if not rows:
        print(f"no study in {url}")
        return 0
    header = ["id", "name", "kind", "images", "items", "labels", "created"]
    cells = [header] + [
        [str(r["id"]), r["name"], r["kind"] if r["ready"] else f"{r['kind']} (incomplete)",
         str(r["images"]), str(r["items"]), str(r["labels"]),
         r["created"].strftime("%Y-%m-%d %H:%M") if r["created"] else ""]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
