"""I-GOS / iGOS++: the mask's heatmap beside its optimisation curves, full width: the loss on its
own axis, the class probabilities with the mask's pixels deleted (and, iGOS++, inserted) on a
0-1 axis."""

from __future__ import annotations

import torch

from netreveal.attribution.igos import IgosResult
from netreveal.report.html import Report
from netreveal.report.legend import MASK_SCALE, colour_bar
from netreveal.report.plots import line_chart
from netreveal.report.render import overlay
from netreveal.report.sections import renders


def optimisation_charts(extras: dict, i: int, title: str) -> str:
    """Two charts of image ``i``'s optimisation record: loss, and class probabilities."""
    loss = line_chart({"loss": extras["losses"][i].tolist()}, title=f"{title}: loss (what the optimisation lowers)")
    probs = {"p(class), highlighted pixels deleted": extras["deletion_scores"][i].tolist()}
    if "insertion_scores" in extras:
        probs["p(class), only highlighted pixels kept"] = extras["insertion_scores"][i].tolist()
    prob = line_chart(probs, title=f"{title}: class probability", y_range=(0.0, 1.0))
    return (f'<div class="charts" style="order:1;flex:1 1 100%;display:flex;flex-wrap:wrap;gap:8px 24px;'
            f'align-items:flex-start">{loss}{prob}</div>')


@renders(IgosResult)
def igos_sections(report: Report, keys: list[str], images: torch.Tensor, result: IgosResult, title: str) -> None:
    h, w = result.raw.shape[-2:]
    for i, key in enumerate(keys):
        src = report.save_picture(overlay(images[i], result.maps[i]), f"{key}-{result.method}")
        report.add_section(key, title, f'<figure><img src="{src}" alt="{title} heatmap">{colour_bar(MASK_SCALE)}'
                           f"<figcaption>mask {h}x{w}</figcaption></figure>"
                           f"{optimisation_charts(result.extras, i, title)}")
