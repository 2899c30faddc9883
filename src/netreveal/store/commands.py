"""The work behind ``netreveal study create|export|import-labels|list`` (arguments: ``store/cli.py``).

Bad input — a missing or empty image folder, a bad database URL, an unknown study, a bad CSV —
is a :class:`NetrevealError` (the CLI prints one line and exits with 2), raised before anything
is written.
"""

from __future__ import annotations

from netreveal.errors import NetrevealError


def run(args) -> int:
    """Run the ``study`` sub-command named by ``args.study_command``."""
    handlers = {"create": create, "export": export, "import-labels": import_labels, "list": listing}
    handler = handlers.get(args.study_command)
    if handler is None:
        raise NetrevealError(f"unknown study command {args.study_command!r}")
    return handler(args)


def _open(args):
    from netreveal.store.db import open_store

    return open_store(getattr(args, "database_url", None))


def create(args) -> int:
    """``study create``: INV on an image folder, stored with reveal frames."""
    from netreveal.data.images import list_images
    from netreveal.model.adapter import load_model
    from netreveal.pipeline import read_folder
    from netreveal.store import studies

    studies.validate_study_name(args.name)
    if args.batch_size < 1:
        raise NetrevealError("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise NetrevealError("--limit must be at least 1")
    list_images(args.images)  # a missing or empty folder fails before the database is touched
    store = _open(args)
    try:
        if studies.study_exists(store, args.name):
            raise NetrevealError(f"study {args.name!r} already exists in {store.url}")
        adapter = load_model(args.model, args.weights, class_names=args.class_names, input_size=args.input_size,
                             device=args.device)
        inputs = read_folder(adapter, args.images, args.limit)
        study_id = studies.create_study(store, args.name, adapter, inputs, layers=args.layers, seed=args.seed,
                                        batch_size=args.batch_size, progress=not args.quiet)
        summary = next(s for s in studies.list_studies(store) if s["id"] == study_id)
        print(f"created study {args.name!r} (id {study_id}) in {store.url}: "
              f"{summary['images']} images, {summary['items']} items")
    finally:
        store.close()
    return 0


def export(args) -> int:
    """``study export``: every record of a study as CSV and JSON (with its pictures)."""
    from netreveal.store import studies

    store = _open(args)
    try:
        out = studies.export_study(store, args.name, args.out)
    finally:
        store.close()
    print(out.resolve())
    return 0


def import_labels(args) -> int:
    """``study import-labels``: guesses with free text from a CSV file."""
    from netreveal.store import studies

    store = _open(args)
    try:
        count = studies.import_labels(store, args.name, args.csv)
    finally:
        store.close()
    print(f"imported {count} label{'s' if count != 1 else ''} into study {args.name!r}")
    return 0


def listing(args) -> int:
    """``study list``: one line per study."""
    from netreveal.store import studies

    store = _open(args)
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
        [str(r["id"]), r["name"], r["kind"], str(r["images"]), str(r["items"]), str(r["labels"]),
         r["created"].strftime("%Y-%m-%d %H:%M") if r["created"] else ""]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
