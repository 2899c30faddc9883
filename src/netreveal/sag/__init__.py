"""Structured Attention Graphs: multiple minimal sufficient explanations of one prediction."""

from netreveal.sag.explain import structured_attention_graph
from netreveal.sag.graph import sag_expression
from netreveal.sag.result import SagEdge, SagNode, SagResult
from netreveal.sag.svg import render_sag_svg

__all__ = [
    "SagEdge",
    "SagNode",
    "SagResult",
    "render_sag_svg",
    "sag_expression",
    "structured_attention_graph",
]
