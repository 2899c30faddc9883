"""I-GOS / iGOS++: the mask's heatmap beside its optimisation curves (loss, deletion and insertion scores)."""

from __future__ import annotations

import torch

from netreveal.attribution.igos import IgosResult
from netreveal.report.html import Report
from netreveal.report.legend import MASK_SCALE, colour_bar
from netreveal.report.plots import line_chart_svg
from netreveal.report.render import overlay
from netreveal.report.sections import renders


@renders(IgosResult)
def igos_sections(report: Report, keys: list[str], images: torch.Tensor, result: IgosResult, title: str) -> None:
    extras = result.extras
    h, w = result.raw.shape[-2:]
    for i, key in enumerate(keys):
        src = report.save_picture(overlay(images[i], result.maps[i]), f"{key}-{result.method}")
        curves = {"loss": extras["losses"][i].tolist(), "p(deleted)": extras["deletion_scores"][i].tolist()}
        if "insertion_scores" in extras:
            curves["p(inserted)"] = extras["insertion_scores"][i].tolist()
        chart = line_chart_svg(curves, title=f"{title} optimisation")
        report.add_section(key, title, f'<figure><img src="{src}" alt="{title} heatmap">{colour_bar(MASK_SCALE)}'
                           f"<figcaption>mask {h}x{w}</figcaption></figure>{chart}")
