"""A hand-made Structured Attention Graph with merged nodes (sets reached from several parents),
the shape that puts sibling and converging edge labels close together."""

import torch

from netreveal.sag import SagBatch, SagEdge, SagNode, SagResult

ROOTS = [[10, 11, 17], [11, 17, 18], [17, 18, 24], [3, 4, 5], [30, 31]]
SHOWN = [0, 1, 2]
FULL_PROB = 0.8


def confidence(patches) -> float:
    """Made-up relative confidence: larger sets keep more, a little spread by patch id."""
    return min(1.0, 0.25 + 0.22 * len(patches) + 0.002 * sum(patches))


def merged_graph(expand_above: float = 0.6) -> SagResult:
    """netreveal's merged graph under the shown roots: a node above ``expand_above`` gets one child
    per patch, a set reached twice is one node."""
    nodes, edges, index = [], [], {}
    for i in SHOWN:
        index[tuple(ROOTS[i])] = len(nodes)
        c = confidence(ROOTS[i])
        nodes.append(SagNode(list(ROOTS[i]), c * FULL_PROB, c, 0, root=True))
    frontier, level = list(range(len(nodes))), 0
    while frontier:
        level += 1
        new = []
        for nid in frontier:
            node = nodes[nid]
            if node.confidence <= expand_above or len(node.patches) < 2:
                continue
            for q in node.patches:
                child = tuple(p for p in node.patches if p != q)
                if child not in index:
                    index[child] = len(nodes)
                    c = confidence(child)
                    nodes.append(SagNode(list(child), c * FULL_PROB, c, level))
                    new.append(index[child])
                edges.append(SagEdge(nid, index[child], q))
        frontier = new
    return SagResult(target=0, full_prob=FULL_PROB, baseline_prob=0.01, grid=7, image_size=[56, 56],
                     roots=[list(r) for r in ROOTS], root_probs=[confidence(r) * FULL_PROB for r in ROOTS],
                     shown=list(SHOWN), nodes=nodes, edges=edges, saliency=torch.zeros(7, 7),
                     forward_passes=100, saliency_forward_passes=0, depth=3, stop_reason="max_roots",
                     params={"variant": "netreveal", "select": "largest", "max_shown": 3, "max_overlap": 2,
                             "insertion": "hard", "baseline": "black"}, provenance={})


def merged_batch() -> SagBatch:
    return SagBatch(graphs=[merged_graph()], params={}, provenance={})
