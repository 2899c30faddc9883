"""Structured Attention Graphs: multiple minimal sufficient explanations of one prediction."""

from netreveal.sag.explain import structured_attention_graph
from netreveal.sag.graph import root_sets_text, sag_expression
from netreveal.sag.result import SagBatch, SagEdge, SagNode, SagResult
from netreveal.sag.statistics import sag_statistics
from netreveal.sag.svg import render_sag_svg
from netreveal.sag.variants import VARIANTS

__all__ = [
    "VARIANTS",
    "SagBatch",
    "SagEdge",
    "SagNode",
    "SagResult",
    "render_sag_svg",
    "root_sets_text",
    "sag_expression",
    "sag_statistics",
    "structured_attention_graph",
]
