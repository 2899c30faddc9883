"""The jobs behind the CLI: read inputs, run methods, score them, write the report and tables."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from netreveal import results as result_io
from netreveal.csvtable import write_table
from netreveal.data.images import image_records, label_index, load_image
from netreveal.errors import NetrevealError
from netreveal.methods import Method, Options
from netreveal.model.adapter import ModelAdapter
from netreveal.provenance import provenance
from netreveal.report import Report


@dataclass
class Inputs:
    """A batch of images ready for the model, with what we know about each."""

    keys: list[str]  # unique names, e.g. each image's path relative to the folder read
    images: torch.Tensor
    labels: list[int | None]
    label_names: list[str | None]
    masks: list[torch.Tensor | None]  # ground-truth evidence mask (H, W) per image, when known
    part_masks: list[torch.Tensor | None] | None = None  # every ground-truth part (P, H, W), when known


def image_key(root: str | os.PathLike, path: str | os.PathLike) -> str:
    """An image's unique name: its path relative to the folder ``root`` (``/``-separated, with its
    extension, so ``cat.png``, ``cat.jpg`` and ``sub/cat.png`` stay apart), or its file name when
    ``root`` is the image file itself."""
    root, path = Path(root), Path(path)
    return path.relative_to(root).as_posix() if root.is_dir() else path.name


def read_folder(adapter: ModelAdapter, root: str | os.PathLike, limit: int | None = None) -> Inputs:
    """Load and check every image under ``root`` (all are read before any work starts); keys are
    :func:`image_key`."""
    from netreveal.data.partsworld import load_ground_truth

    if limit is not None and limit < 1:
        raise NetrevealError(f"--limit must be at least 1, got {limit}")
    records = image_records(root)
    if limit is not None:
        records = records[:limit]
    keys, tensors, labels, names, masks, parts = [], [], [], [], [], []
    for rec in tqdm(records, desc="reading images", unit="img", disable=len(records) < 20):
        tensors.append(adapter.preprocess(load_image(rec.path)))
        keys.append(image_key(root, rec.path))
        names.append(rec.label_name)
        labels.append(label_index(rec.label_name, adapter.class_names))
        truth = load_ground_truth(rec.path)
        masks.append(None if truth is None else _evidence_mask(truth, rec.label_name, adapter.input_size))
        parts.append(None if truth is None else _resize_masks(truth[0], adapter.input_size))
    return Inputs(keys, torch.stack(tensors), labels, names, masks, parts)


def _resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    if masks.shape[0] == 0:
        return masks.bool()
    resized = torch.nn.functional.interpolate(masks.float()[:, None], size=(size, size), mode="nearest")
    return resized[:, 0] > 0.5


def _evidence_mask(truth, class_name: str | None, size: int) -> torch.Tensor | None:
    """Union of the masks of the class's defining parts, resized to the model input."""
    from netreveal.data.partsworld import CLASSES

    part_masks, parts = truth[0], truth[1]
    defining = set(CLASSES.get(class_name or "", ()))
    chosen = [m for m, p in zip(part_masks, parts) if p in defining]
    if not chosen:
        return None
    union = torch.stack(chosen).any(dim=0).float()[None, None]
    return torch.nn.functional.interpolate(union, size=(size, size), mode="nearest")[0, 0] > 0.5


def parse_target(target: str | None, adapter: ModelAdapter) -> int | None:
    """A class given by index or by name; None means 'the predicted class'."""
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < len(adapter.class_names):
            raise NetrevealError(f"class index {index} out of range: the model has {len(adapter.class_names)} classes")
        return index
    if target in adapter.class_names:
        return adapter.class_names.index(target)
    raise NetrevealError(f"unknown class {target!r}")


@torch.no_grad()
def predict(adapter: ModelAdapter, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities (B, C)."""
    model = adapter.model
    was = model.training
    model.eval()
    try:
        out = [model(images[i : i + batch_size]).softmax(dim=1) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out)


def score_heatmaps(adapter: ModelAdapter, inputs: Inputs, maps: torch.Tensor, targets: torch.Tensor,
                   steps: int, baseline: str, batch_size: int, progress: bool) -> dict[str, torch.Tensor]:
    """Deletion/insertion AUC per image, and pointing game / energy where ground truth exists."""
    from netreveal.metrics.localization import energy_in_mask, pointing_game
    from netreveal.metrics.perturbation import deletion_insertion

    scores = deletion_insertion(adapter.model, inputs.images, maps, targets, steps=steps, baseline=baseline,
                                batch_size=batch_size, progress=progress)
    out = {"deletion_auc": scores.deletion_auc, "insertion_auc": scores.insertion_auc}
    have = [i for i, m in enumerate(inputs.masks) if m is not None]
    if have:
        masks = torch.stack([inputs.masks[i] for i in have])
        hits = torch.full((len(maps),), float("nan"))
        energy = torch.full((len(maps),), float("nan"))
        hits[have] = pointing_game(maps[have], masks).float()
        energy[have] = energy_in_mask(maps[have], masks).float()
        out["pointing_game"] = hits
        out["energy_in_mask"] = energy
    return out


def run_methods(adapter: ModelAdapter, inputs: Inputs, methods: list[Method], opts: Options, target: int | None):
    """Run each method on all inputs: ``{name: (result, seconds)}`` plus the targets used."""
    probs = predict(adapter, inputs.images, opts.batch_size)
    targets = probs.argmax(dim=1) if target is None else torch.full((len(probs),), target, dtype=torch.long)
    done = {method.name: _timed_run(method, adapter, inputs, targets, opts) for method in methods}
    return probs, targets, done


def _timed_run(method: Method, adapter: ModelAdapter, inputs: Inputs, targets: torch.Tensor, opts: Options):
    """``(result, seconds)`` of one method on all inputs."""
    start = time.perf_counter()
    result = method.run(adapter, inputs.images, targets, opts)
    return result, time.perf_counter() - start


def _method_metrics(method: Method, result, adapter: ModelAdapter, inputs: Inputs, targets: torch.Tensor,
                    steps: int, baseline: str, opts: Options) -> dict[str, torch.Tensor]:
    """Per-image scores of a method's heatmaps (empty for methods without one)."""
    if method.heatmaps is None:
        return {}
    return score_heatmaps(adapter, inputs, method.heatmaps(result), targets, steps, baseline,
                          opts.batch_size * 4, opts.progress)


def explain(adapter: ModelAdapter, inputs: Inputs, methods: list[Method], opts: Options, out_dir: str | os.PathLike,
            target: int | None = None, steps: int = 50, baseline: str = "blur", title: str = "netreveal report",
            force: bool = False) -> Path:
    """Explain every input with every method and write the HTML report (and saved results) to
    ``out_dir``; an earlier report there is replaced only with ``force``."""
    if len(set(inputs.keys)) != len(inputs.keys):
        raise NetrevealError("two input images have the same key")
    report = Report(out_dir, title=title, meta={"model": adapter.describe(), "options": opts.__dict__,
                                                "provenance": provenance(seed=opts.seed)}, force=force)
    try:
        probs, targets, done = run_methods(adapter, inputs, methods, opts, target)
        for i, key in enumerate(inputs.keys):
            report.add_image(key, inputs.images[i], probs[i], adapter.class_names, inputs.label_names[i])
        write_table(report.staged("results/images.csv"), IMAGES_HEADER, _image_rows(adapter, inputs, probs))
        rows = []
        for method in methods:
            result, seconds = done[method.name]
            result_io.save(result, report.staged(f"results/{method.name.replace('+', 'p')}.pt"))
            metrics = _method_metrics(method, result, adapter, inputs, targets, steps, baseline, opts)
            method.report(report, inputs.keys, inputs.images, result, opts)
            for i, key in enumerate(inputs.keys):
                if metrics and report.images[key].sections:
                    section = report.images[key].sections[-1]
                    section.metrics.update({_label(k): float(v[i]) for k, v in metrics.items() if not torch.isnan(v[i])})
            rows.append(_summary_row(method.name, metrics, seconds, len(inputs.keys)))
        report.add_table("Methods (means over images)", SUMMARY_HEADER, rows)
        accuracy = _accuracy(probs, inputs.labels)
        if accuracy is not None:
            report.add_note(f"Model accuracy on these images: {100 * accuracy:.1f}% ({len(inputs.keys)} images).")
        return report.write()
    except BaseException:
        report.discard()
        raise


IMAGES_HEADER = ["index", "key", "true class", "predicted class", "probability"]


def _image_rows(adapter: ModelAdapter, inputs: Inputs, probs: torch.Tensor) -> list[list]:
    """One row per input, in the order of every saved result's images."""
    top = probs.argmax(dim=1)
    return [[i, key, inputs.label_names[i], adapter.class_name(int(top[i])), float(probs[i, top[i]])]
            for i, key in enumerate(inputs.keys)]


SUMMARY_HEADER = ["method", "images", "deletion AUC ↓", "insertion AUC ↑", "pointing game ↑", "energy in mask ↑", "s / image"]


def _label(metric: str) -> str:
    return {"deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC",
            "pointing_game": "pointing hit", "energy_in_mask": "energy in mask"}.get(metric, metric)


def _mean(values: torch.Tensor | None) -> float | str:
    if values is None:
        return "–"
    values = values[~torch.isnan(values.float())].float()
    return float(values.mean()) if len(values) else "–"


def _summary_row(name: str, metrics: dict, seconds: float, n: int) -> list:
    return [name, n, _mean(metrics.get("deletion_auc")), _mean(metrics.get("insertion_auc")),
            _mean(metrics.get("pointing_game")), _mean(metrics.get("energy_in_mask")), seconds / max(n, 1)]


def _accuracy(probs: torch.Tensor, labels: list[int | None]) -> float | None:
    pairs = [(int(p), y) for p, y in zip(probs.argmax(dim=1), labels) if y is not None]
    return sum(p == y for p, y in pairs) / len(pairs) if pairs else None


def _variants(method: Method, opts: Options, mask_sizes: list[int] | None, size: tuple[int, int]):
    """(row label, options) per run of ``method``: one per mask size for mask-based methods."""
    if not method.uses_mask_size or not mask_sizes:
        return [(method.name, opts)]
    out = []
    for m in mask_sizes:
        side = min(m, *size)
        label = f"{method.name} {side}x{side}" + (" (full)" if side == min(size) else "")
        out.append((label, dataclasses.replace(opts, mask_size=side)))
    return out


def evaluate(adapter: ModelAdapter, inputs: Inputs, methods: list[Method], opts: Options, steps: int = 50,
             baseline: str = "blur", mask_sizes: list[int] | None = None,
             on_row: Callable[[list], None] | None = None) -> tuple[list[str], list[list], dict]:
    """The evaluation table (one row per method run: mean metrics, time per image) and the results.

    Methods that optimise a mask (I-GOS, iGOS++) run once per entry of ``mask_sizes`` (default:
    ``opts.mask_size``); sizes above the input side mean full resolution. Every method explains the
    same targets (the model's predictions) on the same images. ``on_row`` sees each row when done.
    """
    probs = predict(adapter, inputs.images, opts.batch_size)
    targets = probs.argmax(dim=1)
    rows, done = [], {}
    for method in methods:
        for label, run_opts in _variants(method, opts, mask_sizes, tuple(inputs.images.shape[-2:])):
            result, seconds = done[label] = _timed_run(method, adapter, inputs, targets, run_opts)
            metrics = _method_metrics(method, result, adapter, inputs, targets, steps, baseline, opts)
            rows.append(_summary_row(label, metrics, seconds, len(inputs.keys)))
            if on_row is not None:
                on_row(rows[-1])
    return SUMMARY_HEADER, rows, done


SAG_HEADER = ["images", "with a sufficient root", "roots / image", "root size (patches)", "forward passes / image",
              "s / image"]


def sag_statistics(graphs: list, seconds: float) -> tuple[list[str], list[list]]:
    """SAG summary: share of images with at least one sufficient root, mean roots per image, mean
    root size (over all roots found), forward passes and seconds per image."""
    n = len(graphs)
    sizes = [len(root) for g in graphs for root in g.roots]
    found = sum(1 for g in graphs if g.roots)
    row = [n, found / max(n, 1), sum(len(g.roots) for g in graphs) / max(n, 1),
           sum(sizes) / len(sizes) if sizes else "–",
           sum(g.forward_passes + g.saliency_forward_passes for g in graphs) / max(n, 1), seconds / max(n, 1)]
    return SAG_HEADER, [row]


def write_csv(path: str | os.PathLike, header: list[str], rows: list[list]) -> Path:
    """Write a table as CSV atomically (see :func:`netreveal.csvtable.write_table`)."""
    return write_table(path, header, rows)


def format_table(header: list[str], rows: list[list]) -> str:
    """A plain-text table for the terminal."""
    cells = [header] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def partsworld_inputs(adapter: ModelAdapter, n: int, seed: int = 0, split: str = "test") -> Inputs:
    """``n`` held-out parts-world images (classes in turn) with their defining-part masks as ground truth."""
    from netreveal.data.partsworld import PartsWorld

    if n < 1:
        raise NetrevealError("need at least one image")
    world = PartsWorld(size=adapter.input_size, seed=seed, split=split)
    images, _, samples = world.batch(range(n))
    masks = [s.masks[torch.tensor(s.defining)].any(dim=0) for s in samples]
    keys = [f"{s.class_name}-{s.index:03d}" for s in samples]
    names = [s.class_name for s in samples]
    return Inputs(keys, images, [label_index(c, adapter.class_names) for c in names], names, list(masks),
                  [s.masks for s in samples])


INV_LAYER_HEADER = ["layer", "cluster maps", "best part IoU (mean)", "IoU (median)", "aligned share",
                    "INV del AUC ↓", "INV ins AUC ↑", "Grad-CAM del AUC ↓", "Grad-CAM ins AUC ↑"]


def evaluate_inv_layers(adapter: ModelAdapter, inputs: Inputs, result, steps: int = 50, baseline: str = "blur",
                        batch_size: int = 64, fraction: float = 0.05, iou_threshold: float = 0.3,
                        progress: bool = False) -> tuple[list[str], list[list]]:
    """Per INV layer: how well cluster maps align with ground-truth parts (best IoU of each cluster
    map's top-``fraction`` region with any part; share at IoU >= ``iou_threshold``), and deletion /
    insertion AUC of the layer's combined map beside Grad-CAM at the same layer."""
    from netreveal.attribution.gradcam import gradcam_layers
    from netreveal.imaging import minmax, upsample
    from netreveal.metrics.alignment import best_part_iou
    from netreveal.metrics.perturbation import deletion_insertion

    targets = torch.tensor([img.target for img in result.images])
    size = tuple(inputs.images.shape[-2:])
    cams = {}
    for start in range(0, len(targets), batch_size):
        part = gradcam_layers(adapter.model, inputs.images[start:start + batch_size], result.layers,
                              targets[start:start + batch_size])
        for name, raw in part.items():
            cams.setdefault(name, []).append(minmax(upsample(raw, size).clamp_min(0)))
    rows = []
    for depth, name in enumerate(tqdm(result.layers, desc="INV layers", disable=not progress)):
        ious = []
        for i, img in enumerate(result.images):
            parts = inputs.part_masks[i] if inputs.part_masks else None
            clusters = img.layers[depth].clusters
            if parts is None or not clusters:
                continue
            best, _ = best_part_iou(torch.stack([c.map.float() for c in clusters]), parts, fraction)
            ious.append(best)
        iou = torch.cat(ious) if ious else torch.zeros(0)
        combined = torch.stack([img.layers[depth].combined.float() for img in result.images])
        ours = deletion_insertion(adapter.model, inputs.images, combined, targets, steps=steps, baseline=baseline,
                                  batch_size=batch_size)
        ref = deletion_insertion(adapter.model, inputs.images, torch.cat(cams[name]), targets, steps=steps,
                                 baseline=baseline, batch_size=batch_size)
        rows.append([name, len(iou), float(iou.mean()) if len(iou) else "–", float(iou.median()) if len(iou) else "–",
                     float((iou >= iou_threshold).float().mean()) if len(iou) else "–",
                     float(ours.deletion_auc.mean()), float(ours.insertion_auc.mean()),
                     float(ref.deletion_auc.mean()), float(ref.insertion_auc.mean())])
    return INV_LAYER_HEADER, rows
