"""Attribution methods: heatmaps saying where the evidence for a class lies."""

from netreveal.attribution.gradcam import gradcam
from netreveal.attribution.igos import igos

__all__ = ["gradcam", "igos"]
