"""InfoDisent: per image the components ranked by their contribution W[c, k] * v_k to the explained
class, each as its heatmap on the image with the argmax-cell box, beside its prototypes (the
training images where that component fires most, with their boxes and heatmaps); on the first image
a global view of every class's weights over the components (also as a summary table)."""

from __future__ import annotations

import html
from collections import Counter

import torch

from netreveal.concepts.infodisent import InfoDisentExplanation
from netreveal.concepts.selection import origin_model
from netreveal.concepts.training_images import TrainingImages
from netreveal.imaging import minmax
from netreveal.report.html import Report
from netreveal.report.legend import COMPONENT_SCALE, colour_bar
from netreveal.report.render import draw_box, overlay
from netreveal.report.sections import renders
from netreveal.report.sections.thumbs import Thumbs, figure, fmt, part_under, thumb_figure

NEGLIGIBLE_SHARE = 0.01  # a class weight under 1 % of the head's largest counts as zero: left out


def weight_floor(weights: torch.Tensor) -> float:
    """The smallest class weight shown: :data:`NEGLIGIBLE_SHARE` of the largest (and above zero)."""
    top = float(weights.detach().float().max()) if weights.numel() else 0.0
    return max(NEGLIGIBLE_SHARE * top, 1e-12)


def weight_text(value: float, top: float) -> str:
    """A weight with two decimals, or three significant digits for a head whose weights are all small."""
    return f"{value:.2f}" if top >= 0.1 else f"{value:.3g}"


def weights_svg(weights: torch.Tensor, class_names: list[str], per_class: int = 3) -> str:
    """Inline SVG: every class (row) against the components its ``per_class`` largest weights use
    (columns, grouped by the class that weighs them most); cell darkness = weight."""
    w = weights.detach().float().cpu().clamp_min(0)
    c, d = w.shape
    picked = w.topk(min(per_class, d), dim=1).indices.unique().tolist()
    floor = weight_floor(w)
    picked = [k for k in picked if float(w[:, k].max()) >= floor]
    if not picked:
        return ""
    picked.sort(key=lambda k: (int(w[:, k].argmax()), -float(w[:, k].max())))
    top = float(w[:, picked].max())
    cell_w, cell_h, left, head = 30, 22, 10 + 8 * max(len(str(n)) for n in class_names), 30
    width, height = left + cell_w * len(picked) + 4, head + cell_h * c + 4
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
         f'class="chart"><title>class weights over components</title>')
    ]
    for j, k in enumerate(picked):
        x = left + j * cell_w + cell_w / 2
        parts.append(f'<text x="{x:.1f}" y="{head - 8}" font-size="11" text-anchor="middle">#{k}</text>')
    for r, name in enumerate(class_names):
        y = head + r * cell_h
        parts.append(
            f'<text x="{left - 6}" y="{y + cell_h * 0.68:.1f}" font-size="13" text-anchor="end">'
            f"{html.escape(str(name))}</text>"
        )
        for j, k in enumerate(picked):
            value = float(w[r, k])
            shade = value / top if top > 0 else 0.0
            parts.append(
                f'<rect x="{left + j * cell_w}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="#7a2c8f" fill-opacity="{0.05 + 0.95 * shade:.3f}" stroke="#dde2ea">'
                f"<title>{html.escape(str(name))} · component #{k}: {value:.3f}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def class_weight_rows(weights: torch.Tensor, class_names: list[str], per_class: int = 5) -> list[list]:
    """Summary-table rows: class, its strongest components with weights (negligible ones left out:
    :func:`weight_floor`), its non-zero count."""
    w = weights.detach().float().cpu()
    floor, top = weight_floor(w), float(w.max())
    rows = []
    for c, name in enumerate(class_names):
        vals, idx = w[c].topk(min(per_class, w.shape[1]))
        listed = ", ".join(f"#{int(k)}\u00a0{weight_text(float(v), top)}" for k, v in zip(idx, vals)
                           if float(v) >= floor)
        rows.append([str(name), listed or "–", int((w[c] > 0).sum())])
    return rows


@renders(InfoDisentExplanation)
def infodisent_sections(report: Report, keys: list[str], images: torch.Tensor, result: InfoDisentExplanation,
                        title: str) -> None:
    """Per image the ranked components beside their prototypes; a global view on the first image."""
    head = origin_model("infodisent", result.extras.get("head", "demo"))
    protos = head.prototypes
    thumbs = Thumbs(report, TrainingImages.of(head), "proto")
    names = list(result.class_names)
    report.add_table(f"{title}: each class's strongest components (weights under {NEGLIGIBLE_SHARE:.0%} of the "
                     "largest left out)",
                     ["class", "components (weight)", "non-zero weights"],
                     class_weight_rows(result.class_weights, names))
    for i, key in enumerate(keys):
        if i == 0:
            svg = weights_svg(result.class_weights, names)
            report.add_section(
                key,
                f"{title}: what each class weighs (all images)",
                f'<div><div class="metrics">weights W[c, k] ≥ 0 of each class over the components '
                f"its three largest weights use (darkest: {float(result.class_weights.max()):.2f}; "
                f"hover for values); a class logit is the sum of W[c, k]·v_k over components</div>"
                f'<div class="scroll">{svg}</div></div>',
            )
        report.add_section(key, title, _fragment(report, key, images[i], result, i, protos, thumbs),
                           _metrics(result, i))


def _metrics(result: InfoDisentExplanation, i: int) -> dict:
    names = result.class_names
    target = int(result.targets[i])
    pred = int(result.logits[i].argmax())
    out = {
        "explained class": names[target],
        "head predicts": names[pred],
        "head p(class)": float(result.target_probs[i]),
        "explanation size": int(result.sizes[i]),
    }
    if result.backbone_logits is not None and result.backbone_logits.shape[1] == len(names):
        out["agrees with model"] = "yes" if int(result.backbone_logits[i].argmax()) == pred else "no"
    return out


NAMES_NOTE = ("Components have no names here (the naming studio and the labels name INV cluster maps, not "
              "InfoDisent components): each component is shown by its prototypes, which stand for its name.")


def _fragment(report: Report, key: str, image: torch.Tensor, result: InfoDisentExplanation, i: int, protos,
              thumbs: Thumbs) -> str:
    """Image ``i``'s explanation: the components of its explanation size with their prototypes, the
    other components that add a little in one line; components of negligible weight (:func:`weight_floor`)
    for the class are left out."""
    target = int(result.targets[i])
    logit = float(result.logits[i, target])
    size = max(1, int(result.sizes[i]))
    floor = weight_floor(result.class_weights)
    rows, minor = [], []
    for t in range(result.components.shape[1]):
        k = int(result.components[i, t])
        contrib = float(result.contributions[i, t])
        if contrib <= 0 or float(result.class_weights[target, k]) < floor:
            continue
        share = f"{100 * contrib / logit:.0f}% of the logit {fmt(logit)}" if abs(logit) > 1e-12 else ""
        if t >= size:
            minor.append(f"#{k} (W·v = {fmt(contrib)}{', ' + share if share else ''})")
            continue
        rows.append(_component_row(report, key, image, result, i, t, share, protos, thumbs))
    name = html.escape(result.class_names[target])
    if not rows:
        rows.append(f'<p class="metrics">no component with a non-zero weight for <b>{name}</b> adds to it here</p>')
    lead = (
        f'<div class="metrics">components ranked by their contribution W[c, k]·v_k to <b>{name}</b>: the '
        f"{size} that make its explanation (components whose weight for the class is under "
        f"{NEGLIGIBLE_SHARE:.0%} of the head's largest left out); box: strongest "
        f"cell; beside: prototypes (training images where the component fires most, "
        f"{'their ' if protos else ''}box and map). {NAMES_NOTE}</div>"
        + colour_bar(COMPONENT_SCALE, width=288)
    )
    tail = (f'<p class="metrics">also adding a little: {", ".join(minor)}</p>' if minor else "")
    return f"<div>{lead}{''.join(rows)}{tail}</div>"


def _component_row(report: Report, key: str, image: torch.Tensor, result: InfoDisentExplanation, i: int, t: int,
                   share: str, protos, thumbs: Thumbs) -> str:
    """One component of image ``i``: its map on the image, then its prototypes."""
    k, side = int(result.components[i, t]), int(result.sides[i, t])
    pic = draw_box(overlay(image, minmax(result.heatmaps[i, t].float()[None])[0]), result.boxes[i, t])
    src = report.save_picture(pic, f"{key}-infodisent-c{k}")
    sign = "+" if side == 0 else "−"
    cells, parts = [], []
    if protos is not None:
        for rank in range(protos.m):
            index = int(protos.indices[side, k, rank])
            if index < 0:
                continue
            box = protos.boxes[side, k, rank].tolist()
            src_p, sample = thumbs.picture((k, side, rank), index, protos.heatmap(k, rank, side), box)
            part = part_under(sample, box)
            parts += [part] if part else []
            label = html.escape(thumbs.images.name(index)) + (f"<br>{html.escape(part)}" if part else "")
            cells.append(thumb_figure(src_p, f"prototype {rank + 1} of component {k}", label))
    common = Counter(parts).most_common(1)
    on = (f"<br>prototypes on {html.escape(common[0][0])} ({common[0][1]} of {len(parts)})" if common else "")
    caption = (f"<b>component #{k} {sign}</b><br>W·v = {fmt(float(result.contributions[i, t]))}"
               f"{f' ({share})' if share else ''}<br>v = {fmt(float(result.values[i, t]))}{on}")
    return (f'<div class="row component">{figure(src, f"component {k} on the image", caption)}'
            f'<div class="thumbs">{"".join(cells)}</div></div>')
