"""Structured Attention Graphs: multiple minimal sufficient explanations of one prediction."""

from netreveal.sag.explain import structured_attention_graph
from netreveal.sag.graph import sag_expression
from netreveal.sag.result import SagBatch, SagEdge, SagNode, SagResult
from netreveal.sag.statistics import sag_statistics
from netreveal.sag.svg import render_sag_svg

__all__ = [
    "SagBatch",
    "SagEdge",
    "SagNode",
    "SagResult",
    "render_sag_svg",
    "sag_expression",
    "sag_statistics",
    "structured_attention_graph",
]
