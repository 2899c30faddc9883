"""The attention graph below the shown roots, and its boolean expression."""

from __future__ import annotations

from collections.abc import Sequence

from netreveal.sag.result import SagEdge, SagNode, SagResult
from netreveal.sag.search import PatchScorer, PatchSet


def build_graph(
    scorer: PatchScorer,
    roots: Sequence[PatchSet],
    full_prob: float,
    expand_above: float,
    max_nodes: int,
) -> tuple[list[SagNode], list[SagEdge]]:
    """Roots on top; a node whose relative confidence exceeds ``expand_above`` gets one child per
    patch (the node minus that patch), scored level by level in one batched call per level. A set
    reached from several parents is one node with several incoming edges. At most ``max_nodes``
    nodes (edges to existing nodes are always kept); the empty set is never a node."""
    nodes: list[SagNode] = []
    index: dict[PatchSet, int] = {}
    probs = scorer.score(roots)
    for root, prob in zip(roots, probs, strict=True):
        if root not in index and len(nodes) < max_nodes:
            index[root] = len(nodes)
            nodes.append(SagNode(list(root), prob, prob / full_prob, 0, root=True))
    edges: list[SagEdge] = []
    frontier = list(range(len(nodes)))
    level = 0
    while frontier:
        level += 1
        requests = [
            (nid, q, tuple(p for p in nodes[nid].patches if p != q))
            for nid in frontier
            if nodes[nid].confidence > expand_above and len(nodes[nid].patches) > 1
            for q in nodes[nid].patches
        ]
        child_probs = scorer.score(child for _, _, child in requests)
        new: list[int] = []
        for (parent, removed, child), prob in zip(requests, child_probs, strict=True):
            if child not in index:
                if len(nodes) >= max_nodes:
                    continue
                index[child] = len(nodes)
                nodes.append(SagNode(list(child), prob, prob / full_prob, level))
                new.append(index[child])
            edges.append(SagEdge(parent, index[child], removed))
        frontier = new
    return nodes, edges


def sag_expression(result: SagResult, shown_only: bool = False) -> str:
    """The roots as a boolean expression over patches, e.g. ``"P11 & P30 | P10 & P30"``: the class
    stays confident when all patches of any one term are present. Patch index = row * grid + col."""
    roots = result.shown_roots if shown_only else result.roots
    terms = [" & ".join(f"P{p}" for p in sorted(root)) if root else "TRUE" for root in roots]
    return " | ".join(terms)
