"""Structured Attention Graphs: the minimal sufficient patch sets as an expression and as a graph."""

from __future__ import annotations

import html

import torch

from netreveal.report.html import Report
from netreveal.report.sections import renders
from netreveal.sag import SagBatch, render_sag_svg, sag_expression


@renders(SagBatch)
def sag_sections(report: Report, keys: list[str], images: torch.Tensor, result: SagBatch, title: str) -> None:
    for i, key in enumerate(keys):
        graph = result.graphs[i]
        expression = sag_expression(graph, shown_only=True) or "no sufficient patch set found"
        svg = render_sag_svg(graph, images[i])
        metrics = {"roots found": len(graph.roots), "forward passes": graph.forward_passes,
                   "baseline": graph.params.get("baseline", ""), "search stopped": graph.stop_reason}
        report.add_section(key, title,
                           f'<div><div class="metrics">minimal sufficient sets: '
                           f'<code>{html.escape(expression)}</code></div>'
                           f'<div class="scroll">{svg}</div></div>', metrics)
