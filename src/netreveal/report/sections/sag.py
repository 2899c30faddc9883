"""Structured Attention Graphs: every minimal sufficient patch set found, as sets, and the graph."""

from __future__ import annotations

import html

import torch

from netreveal.report.html import Report
from netreveal.report.sections import renders
from netreveal.sag import SagBatch, SagResult, render_sag_svg
from netreveal.sag.graph import root_sets_text

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


@renders(SagBatch)
def sag_sections(report: Report, keys: list[str], images: torch.Tensor, result: SagBatch, title: str) -> None:
    for i, key in enumerate(keys):
        graph = result.graphs[i]
        svg = render_sag_svg(graph, images[i])
        metrics = {"roots found": len(graph.roots), "roots drawn": len(graph.shown),
                   "forward passes": graph.forward_passes, "variant": graph.params.get("variant", ""),
                   "baseline": graph.params.get("baseline", ""), "search stopped": graph.stop_reason}
        report.add_section(key, title,
                           f'<div><div class="metrics">{roots_summary(graph)}</div>'
                           f'<div class="scroll">{svg}</div></div>', metrics)
