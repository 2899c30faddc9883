"""A heatmap per image, overlaid on it, with a one-line caption of the settings behind it."""

from __future__ import annotations

import torch

from netreveal.report.html import Report
from netreveal.report.sections import renders
from netreveal.results import AttributionResult


def describe(params: dict) -> str:
    """A one-line summary of the settings in a heatmap result's ``params`` ("" when none stands out)."""
    p = params
    if "smoothgrad" in p:
        s = p["smoothgrad"]
        inner = describe(p.get("base_params", {}))
        return (f"mean over {s['samples']} noisy copies (noise {s['noise']:g} of the value range, seed {s['seed']}) "
                f"of {s['base']}" + (f"; {inner}" if inner else ""))
    if "window" in p:
        (wh, ww), (sh, sw) = p["window"], p["stride"]
        return f"{wh}x{ww} px window, stride {sh}x{sw}, {p['baseline']} baseline"
    if "n_samples" in p and "segments" in p:
        hidden = "hidden superpixels in their mean colour" if p.get("fill") == "mean" else f"{p['baseline']} baseline"
        return f"{p['n_samples']} samples over {p['segments']} SLIC superpixels, {hidden}, seed {p['seed']}"
    if "n_masks" in p:
        return (f"{p['n_masks']} masks, {p['cell']}x{p['cell']} grid, p {p['p']}, {p['baseline']} baseline, "
                f"seed {p['seed']}")
    if "layer" in p:
        return f"layer {p['layer']}" + (f" ({p['tap']})" if p.get("tap") else "")
    return ""


@renders(AttributionResult)
def heatmap_sections(report: Report, keys: list[str], images: torch.Tensor, result: AttributionResult,
                     title: str) -> None:
    caption = describe(result.params)
    for i, key in enumerate(keys):
        report.add_heatmap(key, title, images[i], result.maps[i], caption=caption)
