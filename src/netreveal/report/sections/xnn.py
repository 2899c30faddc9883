"""XNN: per image every x-feature (value, contribution, heatmap) beside its top-activating training
images; the class-by-x-feature matrix as a summary table."""

from __future__ import annotations

import html

import torch

from netreveal.concepts.selection import origin_model
from netreveal.concepts.training_images import TrainingImages
from netreveal.concepts.xnn import XNNExplanation
from netreveal.imaging import minmax
from netreveal.report.html import Report
from netreveal.report.legend import XFEATURE_SCALE, colour_bar
from netreveal.report.render import overlay
from netreveal.report.sections import renders
from netreveal.report.sections.thumbs import Thumbs, figure, fmt, thumb_figure

NAMES_NOTE = ("x-features have no names here (the naming studio and the labels name INV cluster maps, not "
              "x-features): each is shown by the training images where it is largest, which stand for its name")


@renders(XNNExplanation)
def xnn_sections(report: Report, keys: list[str], images: torch.Tensor, result: XNNExplanation, title: str) -> None:
    xnn = origin_model("xnn", result.extras.get("xnn", "demo"))
    names = list(result.class_names)
    matrix = xnn.concept_matrix().detach().cpu()
    report.add_table(
        f"{title}: logit change per unit of each x-feature (M = W·Bᵀ)",
        ["class", *[f"x{j}" for j in range(matrix.shape[1])]],
        [[name, *[float(v) for v in matrix[c]]] for c, name in enumerate(names)],
    )
    thumbs = Thumbs(report, TrainingImages.of(xnn), "xnn-top")
    for i, key in enumerate(keys):
        target = int(result.targets[i])
        order = torch.sort(result.contributions[i], descending=True, stable=True).indices.tolist()
        rows, idle = [], []
        for j in order:
            x = float(result.xfeatures[i, j])
            if x <= 0:
                idle.append(f"x{j}")
                continue
            rows.append(_row(report, key, images[i], result, xnn, thumbs, i, j, x))
        none = ""
        if not bool((result.contributions[i] > 0).any()):
            none = (
                f"<br>no x-feature adds to <b>{html.escape(names[target])}</b> here: the "
                "reconstruction reaches it through the absence of the others (its constant term)"
            )
        lead = (
            f'<div class="metrics">x-features ranked by their contribution x_j·M[c, j] to '
            f"<b>{html.escape(names[target])}</b>; beside: the training images where each is largest"
            + (f"; inactive here (x = 0, left out): {', '.join(idle)}" if idle else "")
            + none
            + f". {NAMES_NOTE}</div>"
            + colour_bar(XFEATURE_SCALE, width=288)
        )
        metrics = {
            "explained class": names[target],
            "reconstruction agrees": "yes" if bool(result.agreement[i]) else "no",
            "active x-features": len(order) - len(idle),
            "reconstructed p(class)": float(result.reconstructed[i].softmax(0)[target]),
        }
        report.add_section(key, title, f"<div>{lead}{''.join(rows)}</div>", metrics)


def _row(report: Report, key: str, image: torch.Tensor, result: XNNExplanation, xnn, thumbs: Thumbs, i: int,
         j: int, x: float) -> str:
    """One x-feature of image ``i``: its heatmap, then its top training images."""
    contrib = float(result.contributions[i, j])
    src = report.save_picture(overlay(image, minmax(result.heatmaps[i, j].float()[None])[0]), f"{key}-xnn-x{j}")
    caption = f"<b>x-feature x{j}</b><br>x = {fmt(x)} · contribution {fmt(contrib)}"
    cells = []
    if result.top_images is not None:
        scores = xnn.top_scores
        for rank, index in enumerate(result.top_images[j].tolist()):
            if index < 0:
                continue
            src_t, _ = thumbs.picture((j, rank), index)
            label = html.escape(thumbs.images.name(index))
            if scores is not None:
                label += f"<br>x = {fmt(float(scores[j, rank]))}"
            cells.append(thumb_figure(src_t, f"top image {rank + 1} of x-feature {j}", label))
    return (f'<div class="row component">{figure(src, f"x-feature {j} heatmap", caption)}'
            f'<div class="thumbs">{"".join(cells)}</div></div>')
