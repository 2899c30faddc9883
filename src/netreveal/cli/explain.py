"""``netreveal demo|explain|evaluate``: explain images with methods; write reports and tables.

Bad input (missing path, unreadable image, unknown layer, ...) prints one line ``netreveal: error: ...``
and exits with code 2, without a traceback and without leaving half-written output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from netreveal.cli.args import add_database_arg, add_model_args, add_out_args, load_adapter
from netreveal.cli.demo_settings import DEMO_SETTINGS
from netreveal.errors import NetrevealError

DEMO_METHODS = "gradcam,inv,igos,igos++,sag,infodisent,xnn"
METRIC_CONVENTIONS = ("netreveal", "igos", "rise")  # netreveal.metrics.perturbation_conventions.CONVENTIONS


def _add_run_args(p: argparse.ArgumentParser, default_methods: str) -> None:
    """The flags of a command that runs methods; the method options are added on first use of the
    command (see :class:`netreveal.cli._Parser`), so other commands do not import the methods."""
    p.add_argument("--method", "--methods", dest="methods", default=default_methods,
                   help=f"comma-separated methods (default: {default_methods}); see the list below")
    p.add_argument("--steps", type=int, default=50, help="deletion/insertion steps (default: 50)")
    p.add_argument("--metric-convention", choices=METRIC_CONVENTIONS, default="netreveal",
                   help="how deletion/insertion is scored: netreveal (cells at the map's resolution, trapezoid area), "
                        "igos (the IGOS_pp code: soft cell masks, its area rule) or rise (the RISE code: pixel steps, "
                        "black deletion, blurred insertion; ignores --baseline); see docs/methods/igos.md "
                        "(default: netreveal)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.runs_methods = True


def add_parsers(sub) -> None:
    """Add ``demo``, ``explain`` and ``evaluate`` to an ``argparse`` sub-parser collection."""
    demo = sub.add_parser("demo", help="explain parts-world images with the built-in demo model; write an HTML report")
    add_out_args(demo, default="netreveal-report", help="report folder (default: ./netreveal-report)")
    demo.add_argument("--images", type=int, default=3, help="how many images (default: 3, classes in turn)")
    add_database_arg(demo, help="where to store the demo study (default: $NETREVEAL_DATABASE_URL or ./netreveal.db)")
    demo.add_argument("--threads", type=int, default=1,
                      help="CPU threads of torch (default: 1: the small demo model gains little from more, and a "
                           "busy machine loses much)")
    demo.add_argument("--no-study", action="store_true", help="do not store a study for netreveal serve")
    _add_run_args(demo, DEMO_METHODS)
    demo.method_defaults = DEMO_SETTINGS  # lighter than the library's, said in the report and --help
    demo.set_defaults(handler=cmd_demo)

    explain = sub.add_parser("explain", help="explain a folder of images; write an HTML report and saved results")
    add_model_args(explain)
    explain.add_argument("--images", required=True, help="an image file or a folder (flat or class sub-folders)")
    add_out_args(explain, required=True, help="output folder")
    explain.add_argument("--target", help="class index or name to explain (default: the predicted class)")
    explain.add_argument("--limit", type=int, help="use at most this many images")
    _add_ground_truth_arg(explain)
    _add_shard_args(explain)
    _add_run_args(explain, "gradcam")
    explain.set_defaults(handler=cmd_explain)

    evaluate = sub.add_parser("evaluate",
                              help="deletion, insertion and pointing game per method; prints a table, writes CSV")
    add_model_args(evaluate)
    evaluate.add_argument("--images", help="image folder (default with --model demo: held-out parts-world images)")
    evaluate.add_argument("--n", type=int, default=100,
                          help="parts-world images when --images is not given (default: 100)")
    evaluate.add_argument("--csv", default="netreveal-evaluation.csv",
                          help="CSV output (default: ./netreveal-evaluation.csv)")
    add_out_args(evaluate, help="run folder for the shards and their manifest (default: beside --csv, named "
                                "after it: CSV-STEM-run)", replaces="an unfinished run")
    evaluate.add_argument("--limit", type=int, help="use at most this many images")
    _add_ground_truth_arg(evaluate)
    _add_shard_args(evaluate)
    _add_run_args(evaluate, "gradcam")
    evaluate.set_defaults(handler=cmd_evaluate)


def _add_ground_truth_arg(p: argparse.ArgumentParser) -> None:
    from netreveal.data.groundtruth import DEFAULT_LOADER, LOADERS

    p.add_argument("--ground-truth", choices=list(LOADERS), default=DEFAULT_LOADER,
                   help=f"where the images' ground-truth masks come from (default: {DEFAULT_LOADER}: the masks "
                        "a parts-world folder keeps beside each image)")


def _add_shard_args(p: argparse.ArgumentParser) -> None:
    """How a run is cut into shards, read, spread over workers and resumed."""
    from netreveal.engines import ENGINES
    from netreveal.runs import DEFAULT_SHARD_SIZE

    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                   help=f"images per shard: results are written and resumable shard by shard (default: "
                        f"{DEFAULT_SHARD_SIZE})")
    p.add_argument("--resume", action="store_true",
                   help="continue the killed run in --out: skip its finished shards (its parameters must match)")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="processes that read images (0: read in the main process; default: half the cores, "
                        "at most 4)")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where shards run: local (this process, default) or ray (a Ray cluster)")
    p.add_argument("--ray-address", help="address of the Ray cluster (--engine ray; default: start one here)")
    p.add_argument("--workers", type=int, help="workers of the engine (--engine ray; default: the engine's)")


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


def _check_out(args) -> None:
    """Refuse an --out that is not free, empty or (with --force) an earlier report, before any work."""
    from netreveal.fileio import EXPLANATION_REPORT, check_output_folder

    check_output_folder(args.out, EXPLANATION_REPORT, force=args.force)


def _check_ready(adapter, runs, inputs) -> None:
    """Check layers and method inputs before any work, so a typo fails fast and writes nothing."""
    from netreveal import pipeline

    pipeline.check_runs(runs, adapter, inputs.images[:1])


def cmd_demo(args) -> int:
    start = getattr(args, "started", time.perf_counter())
    if args.threads < 1:
        raise NetrevealError(f"--threads must be at least 1, got {args.threads}")
    import torch

    runs, common, _ = _plan(args)
    _check_out(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        _run_demo(args, runs, common)
    finally:
        torch.set_num_threads(threads)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


def _run_demo(args, runs, common) -> None:
    from netreveal import pipeline
    from netreveal.cli.demo_settings import settings_note
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.methods.flags import method_values
    from netreveal.model.adapter import load_model

    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, args.images)
    _check_ready(adapter, runs, inputs)
    note = settings_note(method_values(args, lists=False)[0], [run.name for run in runs])
    index = pipeline.explain(adapter, inputs, runs, common, args.out, steps=args.steps, baseline=args.baseline,
                             title="netreveal demo: parts world", force=args.force,
                             convention=args.metric_convention, notes=[note] if note else [])
    print(index.resolve())
    if any(run.name == "inv" for run in runs) and not args.no_study:
        _demo_study(adapter, inputs, index.parent / "results" / "inv.pt", args, common)


def _demo_study(adapter, inputs, inv_path: Path, args, common) -> None:
    """Store the demo's INV items as a study (demo, demo-2, ...) for ``netreveal serve``."""
    from netreveal import pipeline
    from netreveal import results as result_io
    from netreveal.cli.args import open_from_args
    from netreveal.store.studies import study_exists
    from netreveal.studies.inv_study import create_study_from_inv

    store = open_from_args(args)
    try:
        name = next(n for n in ["demo"] + [f"demo-{i}" for i in range(2, 1000)] if not study_exists(store, n))
        probs = pipeline.predict(adapter, inputs.images, common.batch_size)
        create_study_from_inv(store, name, adapter, inputs, result_io.load(inv_path), probs, progress=common.progress)
        print(f"study {name!r} stored in {store.url}; play and name concepts with: netreveal serve")
    finally:
        store.close()


def _source_ready(adapter, runs, source):
    """Check the methods on the source's first image (so a typo or a bad first image fails fast)."""
    from netreveal.data.sources import Reading
    from netreveal.data.stream import read_all

    first = read_all(source.slice(0, 1), Reading.for_model(adapter), workers=0)
    _check_ready(adapter, runs, first)
    return first


def _run_plan(args, command: str, adapter, runs, common, source, target=None):
    from netreveal.data.stream import default_loader_workers
    from netreveal.engines import ModelSpec
    from netreveal.runs import MethodSpec, RunPlan

    workers = default_loader_workers() if args.loader_workers is None else args.loader_workers
    return RunPlan(command, ModelSpec.from_args(args), tuple(MethodSpec.of(run) for run in runs), source,
                   shard_size=args.shard_size, seed=common.seed, batch_size=common.batch_size, steps=args.steps,
                   baseline=args.baseline, target=target, convention=args.metric_convention,
                   loader_workers=workers)


def _engine(args):
    from netreveal.engines import get_engine

    if args.workers is not None and args.workers < 1:
        raise NetrevealError(f"--workers must be at least 1, got {args.workers}")
    try:
        return get_engine(args.engine, address=args.ray_address, workers=args.workers)
    except ImportError as exc:
        raise NetrevealError(f"the {args.engine} engine is not available here ({exc.name or exc}); "
                             f'install it with pip install "netreveal[{args.engine}]"') from None


def _check_shard_args(args) -> None:
    if args.shard_size < 1:
        raise NetrevealError(f"--shard-size must be at least 1, got {args.shard_size}")
    if args.loader_workers is not None and args.loader_workers < 0:
        raise NetrevealError(f"--loader-workers must be at least 0, got {args.loader_workers}")


def cmd_explain(args) -> int:
    from netreveal import pipeline
    from netreveal.data.sources import FolderSource
    from netreveal.runs import explain_run
    from netreveal.runs.folder import EXPLAIN_RUN, check_run_folder

    runs, common, _ = _plan(args)
    _check_shard_args(args)
    check_run_folder(args.out, EXPLAIN_RUN, resume=args.resume, force=args.force)
    adapter = load_adapter(args)
    target = pipeline.parse_target(args.target, adapter)
    source = FolderSource.from_folder(args.images, args.limit, ground_truth=args.ground_truth)
    _source_ready(adapter, runs, source)
    plan = _run_plan(args, "explain", adapter, runs, common, source, target)
    index = explain_run(plan, args.out, _engine(args), adapter, resume=args.resume, force=args.force,
                        progress=not args.quiet)
    print(index.resolve())
    return 0


def evaluate_out(args) -> Path:
    """The run folder of ``evaluate``: ``--out``, or beside ``--csv`` named after it."""
    return Path(args.out) if args.out else Path(args.csv).with_name(f"{Path(args.csv).stem}-run")


def cmd_evaluate(args) -> int:
    from netreveal import pipeline
    from netreveal.runs import evaluate_run
    from netreveal.runs.folder import EVALUATE_RUN, check_run_folder

    runs, common, sweeps = _plan(args)
    _check_shard_args(args)
    out = evaluate_out(args)
    check_run_folder(out, EVALUATE_RUN, resume=args.resume, force=args.force)
    adapter = load_adapter(args)
    if args.images:
        from netreveal.data.sources import FolderSource

        source = FolderSource.from_folder(args.images, args.limit, ground_truth=args.ground_truth)
    elif args.model == "demo":
        from netreveal.data.partsworld_truth import partsworld_source

        source = partsworld_source(adapter, args.n)
    else:
        raise NetrevealError("--images is required unless --model is demo")
    first = _source_ready(adapter, runs, source)
    size = tuple(first.images.shape[-2:])
    variants = [variant for run in runs for variant in pipeline._variants(run, sweeps, size)]
    plan = _run_plan(args, "evaluate", adapter, variants, common, source)
    del first
    header, rows, tables = evaluate_run(plan, out, _engine(args), resume=args.resume, force=args.force,
                                        progress=not args.quiet, adapter=adapter)
    print(pipeline.format_table(header, rows))
    path = pipeline.write_csv(args.csv, header, rows)
    print(f"wrote {path}")
    for table in tables:
        print(f"\n{table.title}")
        print(pipeline.format_table(table.header, table.rows))
        path = pipeline.write_csv(Path(args.csv).with_name(f"{Path(args.csv).stem}-{table.name}.csv"), table.header,
                                  table.rows)
        print(f"wrote {path}")
    return 0


__all__ = ["DEMO_METHODS", "add_parsers", "cmd_demo", "cmd_evaluate", "cmd_explain", "evaluate_out"]
