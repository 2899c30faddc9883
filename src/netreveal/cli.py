"""The ``netreveal`` command line.

Bad input (missing path, unreadable image, unknown layer, ...) prints one line ``netreveal: error: ...``
and exits with code 2, without a traceback and without leaving half-written output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netreveal import __version__
from netreveal.errors import NetrevealError

DEMO_METHODS = "gradcam,inv,igos,igos++,sag,infodisent,xnn"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="demo", help="demo, a torchvision name, timm:NAME or module:factory (default: demo)")
    p.add_argument("--weights", help="local .safetensors/.pt state dict, a torchvision weight name or 'pretrained' "
                                     "(the last two download; without --weights the model has random weights)")
    p.add_argument("--weights-map", action="append", metavar="RULE",
                   help="rename the --weights file's keys (repeatable, in order): strip:PREFIX, rename:OLD=NEW "
                        "(prefix), regex:PATTERN=NEW (re.sub), @FILE (rules, one per line), or by-order alone "
                        "(pair tensors in saved order, checking shapes; prints the mapping)")
    p.add_argument("--class-names", help="text file (one name per line) or JSON list of class names")
    p.add_argument("--input-size", type=int, help="input side in pixels (default: the model's)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def _add_force_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace an earlier report in --out (never anything else)")


def _add_run_args(p: argparse.ArgumentParser, default_methods: str) -> None:
    """The flags of a command that runs methods; the method options are added on first use of the
    command (see :class:`_Parser`), so other commands do not import the methods."""
    p.add_argument("--method", "--methods", dest="methods", default=default_methods,
                   help=f"comma-separated methods (default: {default_methods}); see the list below")
    p.add_argument("--steps", type=int, default=50, help="deletion/insertion steps (default: 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.runs_methods = True


class _Parser(argparse.ArgumentParser):
    """An argument parser that gives a method-running command its method flags (generated from the
    registered methods' options) when the command is parsed or its help shown."""

    runs_methods = False
    _method_flags = False

    def _ensure_method_flags(self) -> None:
        if self.runs_methods and not self._method_flags:
            from netreveal.methods import METHODS
            from netreveal.methods.flags import add_method_flags

            self._method_flags = True
            add_method_flags(self)
            self.epilog = "methods: " + ", ".join(f"{name} ({m.title})" for name, m in METHODS.items())

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_method_flags()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_method_flags()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netreveal", description="Explain image classifiers from pixels up to named concepts.")
    parser.add_argument("--version", action="version", version=f"netreveal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="explain parts-world images with the built-in demo model; write an HTML report")
    demo.add_argument("--out", default="netreveal-report", help="report folder (default: ./netreveal-report)")
    _add_force_arg(demo)
    demo.add_argument("--images", type=int, default=3, help="how many images (default: 3, classes in turn)")
    demo.add_argument("--database-url", help="where to store the demo study (default: $NETREVEAL_DATABASE_URL or ./netreveal.db)")
    demo.add_argument("--no-study", action="store_true", help="do not store a study for netreveal serve")
    _add_run_args(demo, DEMO_METHODS)

    explain = sub.add_parser("explain", help="explain a folder of images; write an HTML report and saved results")
    _add_model_args(explain)
    explain.add_argument("--images", required=True, help="an image file or a folder (flat or class sub-folders)")
    explain.add_argument("--out", required=True, help="output folder")
    _add_force_arg(explain)
    explain.add_argument("--target", help="class index or name to explain (default: the predicted class)")
    explain.add_argument("--limit", type=int, help="use at most this many images")
    _add_ground_truth_arg(explain)
    _add_run_args(explain, "gradcam")

    evaluate = sub.add_parser("evaluate", help="deletion, insertion and pointing game per method; prints a table, writes CSV")
    _add_model_args(evaluate)
    evaluate.add_argument("--images", help="image folder (default with --model demo: held-out parts-world images)")
    evaluate.add_argument("--n", type=int, default=100, help="parts-world images when --images is not given (default: 100)")
    evaluate.add_argument("--csv", default="netreveal-evaluation.csv", help="CSV output (default: ./netreveal-evaluation.csv)")
    evaluate.add_argument("--limit", type=int, help="use at most this many images")
    _add_ground_truth_arg(evaluate)
    _add_run_args(evaluate, "gradcam")

    from netreveal.concepts.cli import add_train_head_parser

    add_train_head_parser(sub)
    from netreveal.store.cli import add_study_parser
    from netreveal.web.cli import add_web_parsers

    add_study_parser(sub)
    from netreveal.labels.cli import add_labels_parser
    add_labels_parser(sub)
    add_web_parsers(sub)
    return parser


def _add_ground_truth_arg(p: argparse.ArgumentParser) -> None:
    from netreveal.data.groundtruth import DEFAULT_LOADER, LOADERS

    p.add_argument("--ground-truth", choices=list(LOADERS), default=DEFAULT_LOADER,
                   help=f"where the images' ground-truth masks come from (default: {DEFAULT_LOADER}: the masks "
                        "a parts-world folder keeps beside each image)")


def _plan(args):
    """The method runs, the pipeline's own settings and the sweeps the flags ask for (all checked,
    before any model is loaded)."""
    from netreveal.methods import MethodOptions, get_methods
    from netreveal.methods.flags import method_values

    if args.steps < 1:
        raise NetrevealError("--steps must be at least 1")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise NetrevealError(f"--limit must be at least 1, got {args.limit}")
    values, sweeps = method_values(args, lists=args.command == "evaluate")
    values["progress"] = not args.quiet
    runs = [method.configure(values) for method in get_methods(args.methods)]
    return runs, MethodOptions.from_values(values), sweeps


def _adapter(args):
    from netreveal.model.adapter import load_model, loading_notes

    adapter = load_model(args.model, args.weights, class_names=args.class_names, input_size=args.input_size,
                         device=args.device, weights_map=args.weights_map)
    for line in loading_notes(adapter):
        print(line, file=sys.stderr)
    return adapter


def _check_out(args) -> None:
    """Refuse an --out that is not free, empty or (with --force) an earlier report, before any work."""
    from netreveal.fileio import EXPLANATION_REPORT, check_output_folder

    check_output_folder(args.out, EXPLANATION_REPORT, force=args.force)


def _check_ready(adapter, runs, inputs) -> None:
    """Check layers and method inputs before any work, so a typo fails fast and writes nothing."""
    from netreveal import pipeline

    pipeline.check_runs(runs, adapter, inputs.images[:1])


def cmd_demo(args) -> int:
    from netreveal import pipeline
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.model.adapter import load_model

    runs, common, _ = _plan(args)
    _check_out(args)
    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, args.images)
    _check_ready(adapter, runs, inputs)
    index = pipeline.explain(adapter, inputs, runs, common, args.out, steps=args.steps, baseline=args.baseline,
                             title="netreveal demo: parts world", force=args.force)
    print(index.resolve())
    if any(run.name == "inv" for run in runs) and not args.no_study:
        _demo_study(adapter, inputs, index.parent / "results" / "inv.pt", args, common)
    return 0


def _demo_study(adapter, inputs, inv_path: Path, args, common) -> None:
    """Store the demo's INV items as a study (demo, demo-2, ...) for ``netreveal serve``."""
    from netreveal import pipeline
    from netreveal import results as result_io
    from netreveal.store import open_store
    from netreveal.store.studies import study_exists
    from netreveal.studies.inv_study import create_study_from_inv

    store = open_store(args.database_url)
    try:
        name = next(n for n in ["demo"] + [f"demo-{i}" for i in range(2, 1000)] if not study_exists(store, n))
        probs = pipeline.predict(adapter, inputs.images, common.batch_size)
        create_study_from_inv(store, name, adapter, inputs, result_io.load(inv_path), probs, progress=common.progress)
        print(f"study {name!r} stored in {store.url}; play and name concepts with: netreveal serve")
    finally:
        store.close()


def cmd_explain(args) -> int:
    from netreveal import pipeline

    runs, common, _ = _plan(args)
    _check_out(args)
    adapter = _adapter(args)
    target = pipeline.parse_target(args.target, adapter)
    inputs = pipeline.read_folder(adapter, args.images, args.limit, ground_truth=args.ground_truth)
    _check_ready(adapter, runs, inputs)
    index = pipeline.explain(adapter, inputs, runs, common, args.out, target=target, steps=args.steps,
                             baseline=args.baseline, force=args.force)
    print(index.resolve())
    return 0


def cmd_evaluate(args) -> int:
    from netreveal import pipeline

    runs, common, sweeps = _plan(args)
    adapter = _adapter(args)
    if args.images:
        inputs = pipeline.read_folder(adapter, args.images, args.limit, ground_truth=args.ground_truth)
    elif args.model == "demo":
        from netreveal.data.partsworld_truth import partsworld_inputs

        inputs = partsworld_inputs(adapter, args.n)
    else:
        raise NetrevealError("--images is required unless --model is demo")
    _check_ready(adapter, runs, inputs)
    header, rows, done = pipeline.evaluate(adapter, inputs, runs, common, steps=args.steps, baseline=args.baseline,
                                           sweeps=sweeps,
                                           on_row=lambda row: print("done:", *row, file=sys.stderr, flush=True))
    print(pipeline.format_table(header, rows))
    path = pipeline.write_csv(args.csv, header, rows)
    print(f"wrote {path}")
    for table in pipeline.extra_evaluations(adapter, inputs, done.values(), common, steps=args.steps,
                                            baseline=args.baseline):
        print(f"\n{table.title}")
        print(pipeline.format_table(table.header, table.rows))
        path = pipeline.write_csv(Path(args.csv).with_name(f"{Path(args.csv).stem}-{table.name}.csv"), table.header,
                                  table.rows)
        print(f"wrote {path}")
    return 0


def cmd_train_head(args) -> int:
    from netreveal.concepts.cli import cmd_train_head as run

    return run(args)


COMMANDS = {"demo": cmd_demo, "explain": cmd_explain, "evaluate": cmd_evaluate, "train-head": cmd_train_head}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = COMMANDS.get(args.command) or args.handler
        return handler(args)
    except NetrevealError as exc:
        print(f"netreveal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netreveal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
