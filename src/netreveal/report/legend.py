"""Legends of the report's pictures: the colour bar that says what a heatmap's 0 and 1 mean, and
the ground-truth picture (the input with everything outside the class's region dimmed)."""

from __future__ import annotations

import html

import numpy as np
import torch

from netreveal.report.render import ANCHORS, to_numpy_image

# What the ends of a heatmap mean, per kind of map (low end, high end).
EVIDENCE_SCALE = ("0: no evidence for the class", "1: strongest evidence")
MASK_SCALE = ("0: the mask keeps it", "1: the mask deletes it (the class needs it)")
CLUSTER_SCALE = ("0: these maps are silent", "1: they fire most")
COMPONENT_SCALE = ("0: the component is silent", "1: it fires most")
XFEATURE_SCALE = ("0: the x-feature is silent", "1: it fires most")


def colour_gradient() -> str:
    """The report's colour map as a CSS ``linear-gradient`` from 0 (left) to 1 (right)."""
    stops = ", ".join(
        f"rgb({r:.0f},{g:.0f},{b:.0f}) {100 * i / (len(ANCHORS) - 1):.0f}%" for i, (r, g, b) in enumerate(ANCHORS)
    )
    return f"linear-gradient(to right, {stops})"


def colour_bar(scale: tuple[str, str] = EVIDENCE_SCALE, width: int = 192) -> str:
    """A colour bar ``width`` px wide with what its two ends mean written under them."""
    low, high = (html.escape(s) for s in scale)
    return (
        f'<div class="cbar" style="max-width:{width}px" role="img" aria-label="colour scale: {low} to {high}">'
        f'<div class="cbar-ramp" style="background:{colour_gradient()}"></div>'
        f'<div class="cbar-ends"><span>{low}</span><span>{high}</span></div></div>'
    )


def truth_picture(image: torch.Tensor, mask: torch.Tensor, dim: float = 0.25) -> np.ndarray:
    """The input (3, H, W) with the pixels outside ``mask`` (H, W) dimmed to ``dim`` of their brightness."""
    picture = to_numpy_image(image).astype(np.float32)
    inside = mask.detach().bool().cpu().numpy()[..., None]
    return np.where(inside, picture, picture * dim).round().clip(0, 255).astype(np.uint8)
