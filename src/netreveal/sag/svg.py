"""Drawing a Structured Attention Graph as a self-contained SVG (thumbnails as inline PNGs)."""

from __future__ import annotations

import base64
import io
from html import escape

import torch
import torch.nn.functional as F
from PIL import Image

from netreveal.sag.patches import patch_masks
from netreveal.sag.result import SagResult

HIDDEN_GREY = 0.12  # value of the pixels outside a node's patches


def _thumbnail(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, size, size) resized copy of a (3, H, W) image in [0, 1]."""
    x = image.detach().float().cpu()[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[0].clamp(0, 1)


def _png_data_uri(image: torch.Tensor) -> str:
    array = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def node_thumbnail(
    thumb: torch.Tensor, patches: list[int], grid: int, insertion: str = "hard"
) -> torch.Tensor:
    """The thumbnail with only ``patches`` visible, pasted as the model saw them (``insertion``
    "hard" squares or "soft" blobs) on flat dark grey."""
    size = tuple(thumb.shape[-2:])
    mask = patch_masks([patches], grid, size, insertion)[0].to(thumb.dtype)
    return thumb * mask + HIDDEN_GREY * (1 - mask)


def _colour(confidence: float) -> str:
    if confidence >= 0.9:
        return "#2e7d32"
    if confidence >= 0.6:
        return "#9e9d24"
    if confidence >= 0.4:
        return "#ef6c00"
    return "#c62828"


def render_sag_svg(
    result: SagResult,
    image: torch.Tensor,
    *,
    thumb: int = 72,
    gap_x: int = 18,
    gap_y: int = 56,
    title: str | None = None,
) -> str:
    """SVG markup of the graph: one row per level (roots on top), each node a ``thumb``-pixel
    thumbnail showing only its patches with its relative confidence below, edges labelled with
    the removed patch. ``image`` is the explained (3, H, W) or (1, 3, H, W) image in [0, 1]."""
    if image.dim() == 4:
        image = image[0]
    small = _thumbnail(image, thumb)
    insertion = result.params.get("insertion", "hard")
    levels: dict[int, list[int]] = {}
    for i, node in enumerate(result.nodes):
        levels.setdefault(node.level, []).append(i)
    parents: dict[int, list[int]] = {}
    for edge in result.edges:
        parents.setdefault(edge.child, []).append(edge.parent)
    header = 28 if title is not None else 8
    label_h = 16
    widest = max((len(ids) for ids in levels.values()), default=1)
    width = widest * (thumb + gap_x) + gap_x
    if not result.nodes:
        width = max(width, 360)
    height = header + len(levels) * (thumb + label_h + gap_y) - gap_y + 2 * label_h
    pos: dict[int, tuple[float, float]] = {}
    for row, level in enumerate(sorted(levels)):
        ids = levels[level]

        def place(i: int) -> tuple[float, float]:  # under its parents, then by confidence
            xs = [pos[p][0] for p in parents.get(i, []) if p in pos]
            return (sum(xs) / len(xs) if xs else 0.0, -result.nodes[i].confidence)

        ids.sort(key=place)
        span = len(ids) * (thumb + gap_x) - gap_x
        x0 = (width - span) / 2
        y = header + label_h + row * (thumb + label_h + gap_y)
        for k, i in enumerate(ids):
            pos[i] = (x0 + k * (thumb + gap_x), y)

    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">'
        )
    ]
    if title is not None:
        out.append(
            f'<text x="{gap_x}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>'
        )
    for edge in result.edges:
        (px, py), (cx, cy) = pos[edge.parent], pos[edge.child]
        x1, y1 = px + thumb / 2, py + thumb + label_h
        x2, y2 = cx + thumb / 2, cy - 2
        out.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#888" '
            f'stroke-width="1.2"><title>remove P{edge.removed}</title></line>'
        )
        mx, my = x1 + 0.7 * (x2 - x1), y1 + 0.7 * (y2 - y1)
        out.append(
            f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" fill="#555" '
            f'paint-order="stroke" stroke="#fff" stroke-width="3">-P{edge.removed}</text>'
        )
    for i, node in enumerate(result.nodes):
        x, y = pos[i]
        colour = _colour(node.confidence)
        patches = ", ".join(f"P{p}" for p in node.patches)
        uri = _png_data_uri(node_thumbnail(small, node.patches, result.grid, insertion))
        out.append(
            f"<g><title>{escape(patches)}: {node.confidence:.0%} (p={node.prob:.3f})</title>"
        )
        out.append(
            f'<image x="{x:.1f}" y="{y:.1f}" width="{thumb}" height="{thumb}" href="{uri}"/>'
        )
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{thumb}" height="{thumb}" fill="none" '
            f'stroke="{colour}" stroke-width="{3 if node.root else 2}"/>'
        )
        out.append(
            f'<text x="{x + thumb / 2:.1f}" y="{y + thumb + 13:.1f}" text-anchor="middle" '
            f'fill="{colour}" font-weight="bold">{node.confidence:.0%}</text></g>'
        )
    if not result.nodes:
        out.append(
            f'<text x="{gap_x}" y="{header + label_h}" fill="#555">no sufficient patch set found '
            f"(search stopped: {escape(result.stop_reason)})</text>"
        )
    out.append("</svg>")
    return "\n".join(out)
