"""The explanation methods the CLI and reports know, behind one small interface.

A method takes the model adapter, a batch of images (B, 3, H, W) in [0, 1], their targets (B,)
and options, and returns its result type. Methods that produce one heatmap per image also say how
to get it, so deletion/insertion and the pointing game can score them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from netreveal.errors import NetrevealError
from netreveal.model.adapter import ModelAdapter
from netreveal.report import Report


@dataclass
class Options:
    """Settings shared by methods; each method reads what it needs."""

    layer: str = "last:1"
    layers: str = "last:9"
    batch_size: int = 16
    seed: int = 0
    progress: bool = True
    mask_size: int = 28
    grid: int = 7
    baseline: str = "blur"  # the "nothing here" image for SAG insertion (and the metrics)
    head: str | None = None  # InfoDisent head file (netreveal train-head infodisent)
    xnn: str | None = None  # XNN file (netreveal train-head xnn)


@dataclass
class Method:
    name: str
    title: str
    run: Callable[[ModelAdapter, torch.Tensor, torch.Tensor, Options], Any]
    heatmaps: Callable[[Any], torch.Tensor] | None
    report: Callable[[Report, list[str], torch.Tensor, Any, Options], None]
    check: Callable[[ModelAdapter, torch.Tensor, Options], None] | None = None  # fail fast, before any work
    uses_mask_size: bool = False  # evaluated once per --mask-size when several are given


def check_methods(methods: list[Method], adapter: ModelAdapter, example: torch.Tensor, opts: Options) -> None:
    """Run every method's up-front check (layers exist, concept files load...) on one example."""
    for method in methods:
        if method.check is not None:
            method.check(adapter, example, opts)


def _check_layer(adapter: ModelAdapter, example: torch.Tensor, opts: Options) -> None:
    from netreveal.model.layers import check_feature_maps

    check_feature_maps(adapter.model, opts.layer, example, "Grad-CAM")


def _check_layers(adapter: ModelAdapter, example: torch.Tensor, opts: Options) -> None:
    from netreveal.model.layers import check_feature_maps

    check_feature_maps(adapter.model, opts.layers, example, "INV")


def _run_gradcam(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.gradcam import gradcam

    return gradcam(adapter.model, images, opts.layer, targets, batch_size=opts.batch_size, progress=opts.progress)


def _report_heatmaps(title: str):
    def add(report: Report, keys: list[str], images: torch.Tensor, result, opts: Options) -> None:
        for i, key in enumerate(keys):
            caption = f"layer {result.params['layer']}" if "layer" in result.params else ""
            report.add_heatmap(key, title, images[i], result.maps[i], caption=caption)

    return add


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


register_method(Method("gradcam", "Grad-CAM", _run_gradcam, lambda r: r.maps, _report_heatmaps("Grad-CAM"),
                       _check_layer))


def _run_igos(variant: str):
    def run(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
        from netreveal.attribution.igos import igos

        side = min(opts.mask_size, *images.shape[-2:])  # "224" means full resolution on smaller inputs
        return igos(adapter.model, images, targets, method=variant, mask_size=side,
                    batch_size=max(opts.batch_size * 4, 32), seed=opts.seed, progress=opts.progress)

    return run


def _report_igos(title: str):
    def add(report: Report, keys: list[str], images: torch.Tensor, result, opts: Options) -> None:
        from netreveal.report.plots import line_chart_svg

        extras = result.extras
        for i, key in enumerate(keys):
            src = report.save_picture(_overlay(images[i], result.maps[i]), f"{key}-{result.method}")
            curves = {"loss": extras["losses"][i].tolist(), "p(deleted)": extras["deletion_scores"][i].tolist()}
            if "insertion_scores" in extras:
                curves["p(inserted)"] = extras["insertion_scores"][i].tolist()
            chart = line_chart_svg(curves, title=f"{title} optimisation")
            h, w = result.raw.shape[-2:]
            report.add_section(key, title, f'<figure><img src="{src}" alt="{title} heatmap"><figcaption>'
                               f"mask {h}x{w}</figcaption></figure>{chart}")

    return add


def _overlay(image, heatmap):
    from netreveal.report.render import overlay

    return overlay(image, heatmap)


register_method(Method("igos", "I-GOS", _run_igos("igos"), lambda r: r.maps, _report_igos("I-GOS"),
                       uses_mask_size=True))
register_method(Method("igos++", "iGOS++", _run_igos("igos++"), lambda r: r.maps, _report_igos("iGOS++"),
                       uses_mask_size=True))


def _run_sag(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from tqdm.auto import tqdm

    from netreveal.sag import structured_attention_graph

    return [
        structured_attention_graph(adapter.model, images[i], int(targets[i]), grid=opts.grid, baseline=opts.baseline,
                                   batch_size=max(opts.batch_size * 4, 32), seed=opts.seed)
        for i in tqdm(range(len(images)), desc="SAG", unit="img", disable=not opts.progress)
    ]


def _report_sag(report: Report, keys: list[str], images: torch.Tensor, graphs, opts: Options) -> None:
    import html

    from netreveal.sag import render_sag_svg, sag_expression

    for i, key in enumerate(keys):
        graph = graphs[i]
        expression = sag_expression(graph, shown_only=True) or "no sufficient patch set found"
        svg = render_sag_svg(graph, images[i])
        metrics = {"roots found": len(graph.roots), "forward passes": graph.forward_passes,
                   "baseline": graph.params.get("baseline", opts.baseline), "search stopped": graph.stop_reason}
        report.add_section(key, "Structured Attention Graph",
                           f'<div><div class="metrics">minimal sufficient sets: <code>{html.escape(expression)}</code></div>'
                           f'<div class="scroll">{svg}</div></div>', metrics)


register_method(Method("sag", "Structured Attention Graph", _run_sag, None, _report_sag))


def _run_inv(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.inv import explain_inv

    return explain_inv(adapter.model, images, opts.layers, targets, batch_size=min(opts.batch_size, 8),
                       seed=opts.seed, progress=opts.progress)


def _inv_deepest_maps(result) -> torch.Tensor:
    """The deepest layer's combined map per image: INV's one-map summary for scoring."""
    return torch.stack([img.layers[-1].combined.float() for img in result.images])


def _report_inv(report: Report, keys: list[str], images: torch.Tensor, result, opts: Options) -> None:
    from netreveal.report.inv_section import inv_story_html

    for i, key in enumerate(keys):
        fragment = inv_story_html(report, key, images[i], result.images[i])
        report.add_section(key, "INV: layer-wise feature maps (shallow to deep)", fragment)


register_method(Method("inv", "INV", _run_inv, _inv_deepest_maps, _report_inv, _check_layers))


def _run_ig(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.baselines import integrated_gradients

    return integrated_gradients(adapter.model, images, targets, batch_size=opts.batch_size, progress=opts.progress)


register_method(Method("ig", "Integrated gradients", _run_ig, lambda r: r.maps,
                       _report_heatmaps("Integrated gradients")))


def _register_concept_methods() -> None:
    import netreveal.attribution.baseline_methods
    import netreveal.concepts.methods  # noqa: F401  (registers "infodisent" and "xnn")


_register_concept_methods()


def get_methods(names: str | list[str]) -> list[Method]:
    """Methods by name (comma-separated string or list); unknown names are an error."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise NetrevealError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if not names:
        raise NetrevealError("no method given")
    return [METHODS[n] for n in names]
