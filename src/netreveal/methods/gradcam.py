"""Grad-CAM at ``--layer`` (batched; the backward pass stops at that layer)."""

from __future__ import annotations

from netreveal.attribution.cam import GradCAM
from netreveal.methods.cam import CAMMethod
from netreveal.methods.registry import register_method


@register_method
class GradCAMMethod(CAMMethod):
    name = "gradcam"
    title = "Grad-CAM"
    cam = GradCAM()
