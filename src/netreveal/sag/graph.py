"""The attention graph below the drawn roots, and the roots as text.

Two ways to grow it, both level by level with one batched scoring call per level:

- :func:`build_tree` (the reference code's): every node is drawn anew, so a set reached from two
  parents is two nodes; a node is expanded when the percentage printed under it exceeds the
  threshold, and only its first ``first`` patches (raster order) are removed, one child each.
- :func:`build_graph` (netreveal's): a set reached from several parents is one node with several
  incoming edges; a node above the relative confidence threshold gets one child per patch.
"""

from __future__ import annotations

from collections.abc import Sequence

from netreveal.sag.patches import PatchScorer, PatchSet
from netreveal.sag.result import SagEdge, SagNode, SagResult


def printed_percent(value: float) -> int:
    """A probability as the reference prints it under a node: rounded to 3 decimals (half to even,
    as numpy's ``around``), in percent, truncated to an integer (0.4094 -> 40, 0.4096 -> 41)."""
    return int(round(float(value) * 1000) / 1000 * 100)


def _root_nodes(scorer: PatchScorer, roots: Sequence[PatchSet], full_prob: float,
                max_nodes: int) -> list[SagNode]:
    nodes: list[SagNode] = []
    seen: set[PatchSet] = set()
    for root, prob in zip(roots, scorer.score(roots), strict=True):
        if root not in seen and len(nodes) < max_nodes:
            seen.add(root)
            nodes.append(SagNode(list(root), prob, prob / full_prob, 0, root=True))
    return nodes


def build_tree(
    scorer: PatchScorer,
    roots: Sequence[PatchSet],
    full_prob: float,
    expand_above: float,
    *,
    absolute: bool = False,
    first: int | None = 3,
    max_nodes: int = 500,
) -> tuple[list[SagNode], list[SagEdge], bool]:
    """The reference's patch-deletion tree under ``roots``.

    A node with more than one patch is expanded when :func:`printed_percent` of its confidence
    (its probability / ``full_prob``; with ``absolute`` its probability) exceeds
    ``100 * expand_above``; it gets one child per each of its ``first`` lowest-numbered patches
    (None: every patch), the node minus that patch. Returns (nodes, edges, whether ``max_nodes``
    cut the tree short)."""
    nodes = _root_nodes(scorer, roots, full_prob, max_nodes)
    edges: list[SagEdge] = []
    limit = 100 * expand_above
    frontier = list(range(len(nodes)))
    level, cut = 0, False
    while frontier and not cut:
        level += 1
        requests = []
        for nid in frontier:
            node = nodes[nid]
            value = node.prob if absolute else node.confidence
            if len(node.patches) > 1 and printed_percent(value) > limit:
                for q in node.patches[:first]:
                    requests.append((nid, q, tuple(p for p in node.patches if p != q)))
        probs = scorer.score(child for _, _, child in requests)
        frontier = []
        for (parent, removed, child), prob in zip(requests, probs, strict=True):
            if len(nodes) >= max_nodes:
                cut = True
                break
            frontier.append(len(nodes))
            nodes.append(SagNode(list(child), prob, prob / full_prob, level))
            edges.append(SagEdge(parent, len(nodes) - 1, removed))
    return nodes, edges, cut


def build_graph(
    scorer: PatchScorer,
    roots: Sequence[PatchSet],
    full_prob: float,
    expand_above: float,
    max_nodes: int,
    *,
    absolute: bool = False,
    first: int | None = None,
) -> tuple[list[SagNode], list[SagEdge], bool]:
    """netreveal's graph: roots on top; a node whose relative confidence (with ``absolute``: its
    probability) exceeds ``expand_above`` gets one child per patch (per each of its ``first``
    lowest-numbered patches; None: all), the node minus that patch. A set reached from several
    parents is one node with several incoming edges. At most ``max_nodes`` nodes (edges to
    existing nodes are always kept); the empty set is never a node. Returns (nodes, edges,
    whether ``max_nodes`` left children out)."""
    nodes = _root_nodes(scorer, roots, full_prob, max_nodes)
    index: dict[PatchSet, int] = {tuple(n.patches): i for i, n in enumerate(nodes)}
    edges: list[SagEdge] = []
    frontier = list(range(len(nodes)))
    level, cut = 0, False
    while frontier:
        level += 1
        requests = [
            (nid, q, tuple(p for p in nodes[nid].patches if p != q))
            for nid in frontier
            if (nodes[nid].prob if absolute else nodes[nid].confidence) > expand_above
            and len(nodes[nid].patches) > 1
            for q in nodes[nid].patches[:first]
        ]
        child_probs = scorer.score(child for _, _, child in requests)
        new: list[int] = []
        for (parent, removed, child), prob in zip(requests, child_probs, strict=True):
            if child not in index:
                if len(nodes) >= max_nodes:
                    cut = True
                    continue
                index[child] = len(nodes)
                nodes.append(SagNode(list(child), prob, prob / full_prob, level))
                new.append(index[child])
            edges.append(SagEdge(parent, index[child], removed))
        frontier = new
    return nodes, edges, cut


def sag_expression(result: SagResult, shown_only: bool = False) -> str:
    """The roots as a boolean expression over patches, e.g. ``"P11 & P30 | P10 & P30"``: the class
    stays confident when all patches of any one term are present. Patch index = row * grid + col."""
    roots = result.shown_roots if shown_only else result.roots
    terms = [" & ".join(f"P{p}" for p in sorted(root)) if root else "TRUE" for root in roots]
    return " | ".join(terms)


def root_sets_text(roots: Sequence[Sequence[int]]) -> str:
    """Roots written as sets, e.g. ``"{P24, P25} or {P30, P31}"`` (the empty set: ``{}``)."""
    return " or ".join("{" + ", ".join(f"P{p}" for p in sorted(root)) + "}" for root in roots)
