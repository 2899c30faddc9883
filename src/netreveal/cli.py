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
    p.add_argument("--method", "--methods", dest="methods", default=default_methods,
                   help=f"comma-separated methods (default: {default_methods})")
    p.add_argument("--layer", default="last:1", help="layer for Grad-CAM: dotted name or selector (default: last:1)")
    p.add_argument("--layers", default="last:9", help="layers for layer-wise methods (default: last:9)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="deletion/insertion steps (default: 50)")
    p.add_argument("--baseline", default="blur", choices=["blur", "black", "mean"],
                   help="'nothing here' image for deletion/insertion and SAG (default: blur)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mask-size", default="28",
                   help="I-GOS/iGOS++ mask side (7, 14, 28, 224 = full; default: 28); evaluate takes a list, e.g. 7,14,28,224")
    p.add_argument("--grid", type=int, default=7, help="SAG patch grid side (default: 7)")
    p.add_argument("--head", help="InfoDisent head file from 'netreveal train-head infodisent' (demo: shipped)")
    p.add_argument("--xnn", help="XNN file from 'netreveal train-head xnn' (demo: shipped)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netreveal", description="Explain image classifiers from pixels up to named concepts.")
    parser.add_argument("--version", action="version", version=f"netreveal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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
    _add_run_args(explain, "gradcam")

    evaluate = sub.add_parser("evaluate", help="deletion, insertion and pointing game per method; prints a table, writes CSV")
    _add_model_args(evaluate)
    evaluate.add_argument("--images", help="image folder (default with --model demo: held-out parts-world images)")
    evaluate.add_argument("--n", type=int, default=100, help="parts-world images when --images is not given (default: 100)")
    evaluate.add_argument("--csv", default="netreveal-evaluation.csv", help="CSV output (default: ./netreveal-evaluation.csv)")
    evaluate.add_argument("--limit", type=int, help="use at most this many images")
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


def _options(args):
    from netreveal.methods import Options

    if args.batch_size < 1:
        raise NetrevealError("--batch-size must be at least 1")
    if args.steps < 1:
        raise NetrevealError("--steps must be at least 1")
    sizes = _mask_sizes(args.mask_size)
    if args.command != "evaluate" and len(sizes) > 1:
        raise NetrevealError("--mask-size takes one size here (a list only with evaluate)")
    if args.grid < 1:
        raise NetrevealError("--grid must be at least 1")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise NetrevealError(f"--limit must be at least 1, got {args.limit}")
    return Options(layer=args.layer, layers=args.layers, batch_size=args.batch_size, seed=args.seed,
                   progress=not args.quiet, mask_size=sizes[0], grid=args.grid, baseline=args.baseline,
                   head=args.head, xnn=args.xnn)


def _mask_sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise NetrevealError(f"--mask-size must be whole numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise NetrevealError(f"--mask-size must be at least 1, got {text!r}")
    return sizes


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


def _check_ready(adapter, opts, inputs, methods) -> None:
    """Check layers and method inputs before any work, so a typo fails fast and writes nothing."""
    from netreveal.methods import check_methods

    check_methods(methods, adapter, inputs.images[:1], opts)


def cmd_demo(args) -> int:
    from netreveal import pipeline
    from netreveal.methods import get_methods
    from netreveal.model.adapter import load_model

    opts = _options(args)
    methods = get_methods(args.methods)
    _check_out(args)
    adapter = load_model("demo")
    inputs = pipeline.partsworld_inputs(adapter, args.images)
    _check_ready(adapter, opts, inputs, methods)
    index = pipeline.explain(adapter, inputs, methods, opts, args.out, steps=args.steps, baseline=args.baseline,
                             title="netreveal demo: parts world", force=args.force)
    print(index.resolve())
    if "inv" in args.methods and not args.no_study:
        _demo_study(adapter, inputs, index.parent / "results" / "inv.pt", args, opts)
    return 0


def _demo_study(adapter, inputs, inv_path: Path, args, opts) -> None:
    """Store the demo's INV items as a study (demo, demo-2, ...) for ``netreveal serve``."""
    from netreveal import pipeline
    from netreveal import results as result_io
    from netreveal.store import open_store
    from netreveal.store.studies import create_study_from_inv, study_exists

    store = open_store(args.database_url)
    try:
        name = next(n for n in ["demo"] + [f"demo-{i}" for i in range(2, 1000)] if not study_exists(store, n))
        probs = pipeline.predict(adapter, inputs.images, opts.batch_size)
        create_study_from_inv(store, name, adapter, inputs, result_io.load(inv_path), probs, progress=opts.progress)
        print(f"study {name!r} stored in {store.url}; play and name concepts with: netreveal serve")
    finally:
        store.close()


def cmd_explain(args) -> int:
    from netreveal import pipeline
    from netreveal.methods import get_methods

    opts = _options(args)
    methods = get_methods(args.methods)
    _check_out(args)
    adapter = _adapter(args)
    target = pipeline.parse_target(args.target, adapter)
    inputs = pipeline.read_folder(adapter, args.images, args.limit)
    _check_ready(adapter, opts, inputs, methods)
    index = pipeline.explain(adapter, inputs, methods, opts, args.out, target=target, steps=args.steps,
                             baseline=args.baseline, force=args.force)
    print(index.resolve())
    return 0


def cmd_evaluate(args) -> int:
    from netreveal import pipeline
    from netreveal.methods import get_methods

    opts = _options(args)
    methods = get_methods(args.methods)
    adapter = _adapter(args)
    if args.images:
        inputs = pipeline.read_folder(adapter, args.images, args.limit)
    elif args.model == "demo":
        inputs = pipeline.partsworld_inputs(adapter, args.n)
    else:
        raise NetrevealError("--images is required unless --model is demo")
    _check_ready(adapter, opts, inputs, methods)
    header, rows, done = pipeline.evaluate(adapter, inputs, methods, opts, steps=args.steps, baseline=args.baseline,
                                           mask_sizes=_mask_sizes(args.mask_size),
                                           on_row=lambda row: print("done:", *row, file=sys.stderr, flush=True))
    print(pipeline.format_table(header, rows))
    path = pipeline.write_csv(args.csv, header, rows)
    print(f"wrote {path}")
    if "sag" in done:
        header, rows = pipeline.sag_statistics(*done["sag"])
        print(f"\nStructured Attention Graphs ({args.grid}x{args.grid} patches, {args.baseline} baseline)")
        print(pipeline.format_table(header, rows))
        path = pipeline.write_csv(Path(args.csv).with_name(Path(args.csv).stem + "-sag.csv"), header, rows)
        print(f"wrote {path}")
    if "inv" in done and inputs.part_masks:
        header, rows = pipeline.evaluate_inv_layers(adapter, inputs, done["inv"][0], steps=args.steps,
                                                    baseline=args.baseline, batch_size=opts.batch_size * 4,
                                                    progress=opts.progress)
        print("\nINV per layer: cluster maps vs ground-truth parts (top 5% region), and combined map vs Grad-CAM")
        print(pipeline.format_table(header, rows))
        path = pipeline.write_csv(Path(args.csv).with_name(Path(args.csv).stem + "-inv-layers.csv"), header, rows)
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
