"""Attribution methods: heatmaps saying where the evidence for a class lies."""

from netreveal.attribution.gradcam import gradcam

__all__ = ["gradcam"]
