"""``netreveal labels analyse|crowd``: a study's labels, analysed into a report, or simulated.

    netreveal labels crowd --study demo --noise 0.2 --seed 0
    netreveal labels analyse --study demo --out labels-report [--force] [--embedding-model NAME|PATH] [--tcav]

Handlers import their work lazily so ``netreveal --help`` stays fast. Bad input (unknown study, a
study without labels, a bad noise rate, an output path that is not a report folder) prints one
line and exits with code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from netreveal.cli.args import add_database_arg, add_out_args, open_from_args
from netreveal.errors import NetrevealError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``labels`` and its sub-commands to an ``argparse`` sub-parser collection."""
    labels = subparsers.add_parser("labels",
                                   help="analyse a study's labels (HTML report) or label it with a simulated crowd")
    sub = labels.add_subparsers(dest="labels_command", required=True)

    analyse = sub.add_parser("analyse", aliases=["analyze"],
                             help="local and global explanations from a study's labels, agreement, TCAV; HTML report")
    analyse.add_argument("--study", required=True, help="study name")
    add_out_args(analyse, help="report folder (default: ./labels-<study>)", replaces="an earlier label report")
    analyse.add_argument("--embedding-model",
                         help="sentence-transformers model name or path (default: the offline all-MiniLM-L6-v2)")
    analyse.add_argument("--tcav", action="store_true",
                         help="validate each class's top labels with TCAV on the study's model")
    analyse.add_argument("--tcav-concepts", type=int, default=2, help="labels per class tested with TCAV (default: 2)")
    analyse.add_argument("--tcav-runs", type=int, default=6, help="TCAV runs per concept (default: 6)")
    analyse.add_argument("--tcav-layers", default="best",
                         help="best (the layer where a label scores highest for the class), named (every layer where "
                              "it is a top label) or comma-separated layer names (default: best)")
    analyse.add_argument("--tcav-classifier", choices=("hinge", "logistic"), default="hinge",
                         help="concept vectors from a hinge-loss linear SVM by SGD (the TCAV reference code's) or "
                              "from logistic regression (default: hinge)")
    analyse.add_argument("--top", type=int, default=5,
                         help="labels per class and layer in the global explanations (default: 5)")
    analyse.add_argument("--seed", type=int, default=0)
    analyse.add_argument("--quiet", action="store_true", help="no progress bars")
    add_database_arg(analyse)

    crowd = sub.add_parser("crowd", help="label a parts-world study (e.g. from netreveal demo) with a simulated crowd")
    crowd.add_argument("--study", required=True, help="study name")
    crowd.add_argument("--noise", type=float, default=0.2,
                       help="rate of typos, irrelevant words and wrong class guesses, each (default: 0.2)")
    crowd.add_argument("--seed", type=int, default=0)
    crowd.add_argument("--replace", action="store_true", help="replace the study's earlier crowd labels")
    add_database_arg(crowd)
    labels.set_defaults(handler=run)
    return labels


def run(args) -> int:
    """Run the ``labels`` sub-command named by ``args.labels_command``."""
    handlers = {"analyse": analyse, "analyze": analyse, "crowd": crowd}
    handler = handlers.get(args.labels_command)
    if handler is None:
        raise NetrevealError(f"unknown labels command {args.labels_command!r}")
    return handler(args)


def crowd(args) -> int:
    """``labels crowd``: simulated labels for every item of a parts-world study."""
    from netreveal.data.crowd import CrowdConfig
    from netreveal.labels.crowd_study import label_study_with_crowd

    if not 0.0 <= args.noise <= 1.0:
        raise NetrevealError(f"--noise must be in [0, 1], got {args.noise}")
    config = CrowdConfig.noisy(args.noise, seed=args.seed)
    store = open_from_args(args)
    try:
        count = label_study_with_crowd(store, args.study, config, replace=args.replace)
    finally:
        store.close()
    print(f"stored {count} crowd label{'s' if count != 1 else ''} in study {args.study!r} "
          f"(noise {args.noise:g}, seed {args.seed})")
    return 0


def summary_lines(analysis, per_class: int = 3) -> list[str]:
    """Per class: the labels with the highest global score summed over layers, and the deepest
    layer's top label."""
    totals: dict[str, dict[str, float]] = {}
    deepest: dict[str, tuple[int, str, str]] = {}
    for g in analysis.explanations.global_explanations:
        row = totals.setdefault(g.image_class, {})
        for lab in g.labels:
            row[lab.word] = row.get(lab.word, 0.0) + lab.score
        if g.labels and g.depth >= deepest.get(g.image_class, (-1, "", ""))[0]:
            deepest[g.image_class] = (g.depth, g.layer, g.labels[0].word)
    lines = []
    order = {c: i for i, c in enumerate(analysis.classes)}
    for cls in sorted(totals, key=lambda c: (order.get(c, len(order)), c)):
        ranked = sorted(totals[cls].items(), key=lambda kv: (-kv[1], kv[0]))[:per_class]
        best = ", ".join(f"{w} {s:.1f}" for w, s in ranked) or "no best label"
        depth = deepest.get(cls)
        tail = f"; deepest layer ({depth[1]}): {depth[2]}" if depth else ""
        lines.append(f"  {cls}: {best}{tail}")
    return lines


def _tcav_layers(text: str) -> str | list[str]:
    if text in ("best", "named"):
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise NetrevealError("--tcav-layers needs best, named or layer names")
    return names


def analyse(args) -> int:
    """``labels analyse``: the analysis of a study's labels as an HTML report."""
    from netreveal.labels.analysis import analyse_study
    from netreveal.labels.report import check_out_dir, write_label_report

    for flag, value in (("--tcav-concepts", args.tcav_concepts), ("--top", args.top)):
        if value < 1:
            raise NetrevealError(f"{flag} must be at least 1")
    if args.tcav_runs < 2:
        raise NetrevealError("--tcav-runs must be at least 2 (the significance test compares runs)")
    out = args.out or f"labels-{args.study}"
    check_out_dir(Path(out), force=args.force)  # a bad output folder fails before any work
    store = open_from_args(args)
    try:
        analysis = analyse_study(store, args.study, model=args.embedding_model, tcav=args.tcav, top=args.top,
                                 tcav_concepts=args.tcav_concepts, tcav_runs=args.tcav_runs,
                                 tcav_layers=_tcav_layers(args.tcav_layers), tcav_classifier=args.tcav_classifier,
                                 seed=args.seed,
                                 progress=not args.quiet)
    finally:
        store.close()
    index = write_label_report(analysis, out, force=args.force)
    print(index.resolve())
    print(f"study {args.study!r}: {analysis.n_labels} labels on {len(analysis.items)} maps of "
          f"{len(analysis.images)} images; top labels per class (global score summed over layers):")
    for line in summary_lines(analysis):
        print(line)
    if analysis.tcav is not None:
        sig = sum(r.significant for r in analysis.tcav.rows)
        few = sum(bool(r.warning) for r in analysis.tcav.rows)
        untested = f"; {few} not tested (too few class images, see the report)" if few else ""
        print(f"TCAV: {sig} of {len(analysis.tcav.rows)} concept/class/layer tests significant{untested}")
    return 0
