"""The SAG summary an evaluation prints: how often a sufficient patch set was found, and at what cost."""

from __future__ import annotations

from collections.abc import Sequence

SAG_HEADER = ["images", "with a sufficient root", "roots / image", "root size (patches)", "forward passes / image",
              "s / image"]


def sag_statistics(graphs: Sequence, seconds: float) -> tuple[list[str], list[list]]:
    """SAG summary: share of images with at least one sufficient root, mean roots per image, mean
    root size (over all roots found), forward passes and seconds per image."""
    n = len(graphs)
    sizes = [len(root) for g in graphs for root in g.roots]
    found = sum(1 for g in graphs if g.roots)
    row = [n, found / max(n, 1), sum(len(g.roots) for g in graphs) / max(n, 1),
           sum(sizes) / len(sizes) if sizes else "–",
           sum(g.forward_passes + g.saliency_forward_passes for g in graphs) / max(n, 1), seconds / max(n, 1)]
    return SAG_HEADER, [row]
