"""Structured Attention Graphs: every minimal sufficient patch set found, as sets; the image with its
patch grid and ids beside the graph; the roots the graph does not draw as thumbnails below it."""

from __future__ import annotations

import html

import torch

from netreveal.report.html import Report
from netreveal.report.sections import renders
from netreveal.sag import SagBatch, SagResult, render_sag_svg
from netreveal.sag.graph import root_sets_text
from netreveal.sag.patch_grid import render_patch_grid_svg
from netreveal.sag.svg import graph_width, legible_width, node_thumbnail, png_data_uri, thumbnail

MAX_LISTED = 40  # roots written out under an image; the rest are counted (all are in the result)


def _why_not_drawn(graph: SagResult) -> str:
    """Why the graph draws only some of the roots, from the selection rule in ``params``."""
    p = graph.params
    most, overlap = p.get("max_shown", len(graph.shown)), p.get("max_overlap", 1)
    rule = p.get("select")
    if rule == "largest":
        return (f"the graph draws at most {most}, taken from the largest group of roots that pairwise share "
                f"at most {overlap} patch{'es' if overlap != 1 else ''}")
    if rule == "disparity":
        return f"the graph draws the first {most} in least-overlap order"
    return (f"the graph draws at most {most}, most probable first, pairwise sharing at most {overlap} "
            f"patch{'es' if overlap != 1 else ''}")


def roots_summary(graph: SagResult) -> str:
    """HTML: all roots as sets (up to :data:`MAX_LISTED`, the rest counted), which ones the graph
    draws and why the others are not drawn."""
    roots = graph.roots
    if not roots:
        return f"no sufficient patch set found (search stopped: {html.escape(graph.stop_reason)})"
    if roots == [[]]:
        return "the baseline alone is sufficient: no patch is needed"
    listed = roots[:MAX_LISTED]
    parts = [f"{len(roots)} minimal sufficient set{'s' if len(roots) != 1 else ''}: "
             f"<code>{html.escape(root_sets_text(listed))}</code>"]
    if len(roots) > MAX_LISTED:
        parts.append(f" and {len(roots) - MAX_LISTED} more not written here (all are in the saved result)")
    drawn = graph.shown_roots
    hidden = len(roots) - len(drawn)
    if hidden:
        parts.append(f". Drawn below: <code>{html.escape(root_sets_text(drawn))}</code>; "
                     f"{hidden} not drawn because {_why_not_drawn(graph)}")
    if graph.graph_truncated:
        parts.append(f". The graph stops at {graph.params.get('max_nodes')} nodes")
    return "".join(parts) + "."


def patch_grid_figure(graph: SagResult, image: torch.Tensor) -> str:
    """HTML: the image with the patch grid and ids, the drawn roots' patches outlined."""
    drawn = sorted({p for root in graph.shown_roots for p in root})
    g = graph.grid
    return (f'<figure class="sag-grid">{render_patch_grid_svg(image, g, drawn)}'
            f"<figcaption>patch ids: P = row \u00d7 {g} + column"
            f"{'; outlined: the patches of the drawn roots' if drawn else ''}</figcaption></figure>")


def other_roots(graph: SagResult, image: torch.Tensor, size: int = 96) -> str:
    """HTML: a thumbnail of each root the graph does not draw (up to :data:`MAX_LISTED`), showing
    only its patches, with its confidence; its patch set in the tooltip."""
    hidden = [i for i in range(len(graph.roots)) if i not in set(graph.shown)]
    if not hidden:
        return ""
    small = thumbnail(image[0] if image.dim() == 4 else image, size)
    insertion = graph.params.get("insertion", "hard")
    confidence = graph.root_confidence
    figures = []
    for i in hidden[:MAX_LISTED]:
        root = graph.roots[i]
        text = html.escape(root_sets_text([root]))
        uri = png_data_uri(node_thumbnail(small, root, graph.grid, insertion))
        figures.append(f'<figure class="thumb" title="{text}"><img src="{uri}" alt="root {text}">'
                       f"<figcaption>{confidence[i]:.0%} · {len(root)} patch{'es' if len(root) != 1 else ''}"
                       f"</figcaption></figure>")
    more = len(hidden) - MAX_LISTED
    note = f" ({more} more not shown)" if more > 0 else ""
    return (f'<div class="sag-others"><div class="metrics">The {len(hidden)} root{"s" if len(hidden) != 1 else ""} '
            f"not in the graph{note}, each with its confidence:</div>"
            f'<div class="thumbs">{"".join(figures)}</div></div>')


@renders(SagBatch)
def sag_sections(report: Report, keys: list[str], images: torch.Tensor, result: SagBatch, title: str) -> None:
    for i, key in enumerate(keys):
        graph = result.graphs[i]
        svg = render_sag_svg(graph, images[i])
        metrics = {"roots found": len(graph.roots), "roots drawn": len(graph.shown),
                   "forward passes": graph.forward_passes, "variant": graph.params.get("variant", ""),
                   "baseline": graph.params.get("baseline", ""), "search stopped": graph.stop_reason}
        report.add_section(key, title,
                           f'<div class="sag"><div class="metrics">{roots_summary(graph)}</div>'
                           f'<div class="sag-row">{patch_grid_figure(graph, images[i])}'
                           f'<div class="sag-graph-box" style="flex-basis:{legible_width(graph_width(graph))}px">'
                           f'{svg}</div></div>{other_roots(graph, images[i])}</div>',
                           metrics)
