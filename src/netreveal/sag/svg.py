"""Drawing a Structured Attention Graph as a self-contained SVG (thumbnails as inline PNGs)."""

from __future__ import annotations

import base64
import io
import math
from html import escape

import torch
import torch.nn.functional as F
from PIL import Image

from netreveal.sag.edge_labels import label_size, place_labels
from netreveal.sag.patches import patch_masks
from netreveal.sag.result import SagResult

HIDDEN_GREY = 0.12  # value of the pixels outside a node's patches
FONT = 13  # px of the percentages and edge labels at full size
LEGIBLE_SCALE = 0.8  # the graph shrinks to fit its box down to this share (text >= 10 px), then its box scrolls


def thumbnail(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, size, size) resized copy of a (3, H, W) image in [0, 1]."""
    x = image.detach().float().cpu()[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[0].clamp(0, 1)


def png_data_uri(image: torch.Tensor) -> str:
    """A (3, H, W) image in [0, 1] as a PNG data URI."""
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


def _columns(result: SagResult) -> tuple[dict[int, float], int]:
    """Each node's column in a compact tree layout and the number of columns: a parent sits centred
    over its children, each row is filled left to right one column per node (a subtree moves right
    when its row is taken there). A set reached from several parents sits under the first (its
    other edges are drawn all the same)."""
    nodes = result.nodes
    row_of = {level: k for k, level in enumerate(sorted({node.level for node in nodes}))}
    children: dict[int, list[int]] = {}
    placed_under: set[int] = set()
    for edge in result.edges:
        parent, child = edge.parent, edge.child
        if child not in placed_under and nodes[parent].level < nodes[child].level:
            placed_under.add(child)
            children.setdefault(parent, []).append(child)
    column: dict[int, float] = {}
    free: dict[int, float] = {}  # next free column of each row

    def shift(i: int, by: float) -> None:
        for kid in children.get(i, []):
            column[kid] += by
            row = row_of[nodes[kid].level]
            free[row] = max(free.get(row, 0.0), column[kid] + 1)
            shift(kid, by)

    def place(i: int) -> None:
        kids = children.get(i, [])
        for kid in kids:
            place(kid)
        row = row_of[nodes[i].level]
        at = free.get(row, 0.0)
        if kids:
            centre = sum(column[k] for k in kids) / len(kids)
            if centre < at:
                shift(i, at - centre)
            at = max(at, centre)
        column[i] = at
        free[row] = at + 1

    for i in range(len(nodes)):
        if i not in placed_under:
            place(i)
    return column, max(1, math.ceil(max(free.values(), default=1.0)))


def _gap_x(result: SagResult, gap_x: int) -> int:
    """``gap_x`` or more: room for an edge label between two sibling edges."""
    label_w = max((label_size(f"-P{e.removed}", FONT)[0] for e in result.edges), default=0)
    return max(gap_x, int(label_w / 2))


def graph_width(result: SagResult, *, thumb: int = 64, gap_x: int = 18) -> int:
    """The width in pixels of :func:`render_sag_svg`'s drawing at full size."""
    width = _columns(result)[1] * (thumb + _gap_x(result, gap_x)) + _gap_x(result, gap_x)
    return width if result.nodes else max(width, 360)


def legible_width(width: float) -> int:
    """The narrowest a drawing ``width`` pixels wide is shown (:data:`LEGIBLE_SCALE`)."""
    return round(min(width, width * LEGIBLE_SCALE))


def _edge_labels(result: SagResult, pos: dict[int, tuple[float, float]], thumb: int, label_h: int,
                 texts: list[str]) -> tuple[list[tuple[float, float, float, float]], list]:
    segments = []
    for edge in result.edges:
        (px, py), (cx, cy) = pos[edge.parent], pos[edge.child]
        segments.append((px + thumb / 2, py + thumb + label_h, cx + thumb / 2, cy - 2))
    nodes = [(x - 1, y - 1, x + thumb + 1, y + thumb + label_h) for x, y in pos.values()]
    return segments, place_labels(segments, texts, nodes, FONT)


def render_sag_svg(
    result: SagResult,
    image: torch.Tensor,
    *,
    thumb: int = 64,
    gap_x: int = 18,
    gap_y: int = 56,
    title: str | None = None,
) -> str:
    """SVG markup of the graph: one row per level (roots on top), each node a ``thumb``-pixel
    thumbnail showing only its patches with its relative confidence below, edges labelled with
    the removed patch where no label covers another label or a node (rows move apart until they
    fit). ``image`` is the explained (3, H, W) or (1, 3, H, W) image in [0, 1]. The SVG scales
    down to its box (viewBox, width 100%) but not below :data:`LEGIBLE_SCALE` of its size."""
    if image.dim() == 4:
        image = image[0]
    small = thumbnail(image, thumb)
    insertion = result.params.get("insertion", "hard")
    column, _ = _columns(result)
    rows = {level: k for k, level in enumerate(sorted({node.level for node in result.nodes}))}
    header = 28 if title is not None else 8
    label_h = FONT + 6
    gap_x = _gap_x(result, gap_x)
    width = graph_width(result, thumb=thumb, gap_x=gap_x)
    texts = [f"-P{edge.removed}" for edge in result.edges]
    for extra in range(0, 100, 12):  # widen the gaps between rows until every edge label fits
        step = gap_y + extra
        pos = {i: (gap_x + column[i] * (thumb + gap_x),
                   header + label_h + rows[node.level] * (thumb + label_h + step))
               for i, node in enumerate(result.nodes)}
        segments, spots = _edge_labels(result, pos, thumb, label_h, texts)
        if all(spot is not None for spot in spots):
            break
    height = max(header + len(rows) * (thumb + label_h + step) - step + 2 * label_h, header + 3 * label_h)
    least = legible_width(width)
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="sag-graph" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'style="width:100%;max-width:{width:.0f}px;min-width:{least:.0f}px;height:auto" '
            f'font-family="sans-serif" font-size="{FONT}">'
        )
    ]
    if title is not None:
        out.append(
            f'<text x="{gap_x}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>'
        )
    for (x1, y1, x2, y2), edge in zip(segments, result.edges, strict=True):
        out.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#888" '
            f'stroke-width="1.2"><title>remove P{edge.removed}</title></line>'
        )
    for (x1, y1, x2, y2), spot, text in zip(segments, spots, texts, strict=True):
        mx, my = spot if spot is not None else (x1 + 0.72 * (x2 - x1), y1 + 0.72 * (y2 - y1))
        out.append(
            f'<text class="sag-edge" x="{mx:.1f}" y="{my + FONT * 0.35:.1f}" text-anchor="middle" '
            f'fill="#444" paint-order="stroke" stroke="#fff" stroke-width="3">{text}</text>'
        )
    for i, node in enumerate(result.nodes):
        x, y = pos[i]
        colour = _colour(node.confidence)
        patches = ", ".join(f"P{p}" for p in node.patches)
        uri = png_data_uri(node_thumbnail(small, node.patches, result.grid, insertion))
        out.append(
            f'<g class="sag-node"><title>{{{escape(patches)}}}: {node.confidence:.0%} '
            f"(p={node.prob:.3f})</title>"
        )
        out.append(
            f'<image x="{x:.1f}" y="{y:.1f}" width="{thumb}" height="{thumb}" href="{uri}"/>'
        )
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{thumb}" height="{thumb}" fill="none" '
            f'stroke="{colour}" stroke-width="{3 if node.root else 2}"/>'
        )
        out.append(
            f'<text x="{x + thumb / 2:.1f}" y="{y + thumb + FONT + 2:.1f}" text-anchor="middle" '
            f'fill="{colour}" font-weight="bold">{node.confidence:.0%}</text></g>'
        )
    if not result.nodes:
        out.append(
            f'<text x="{gap_x}" y="{header + label_h}" fill="#555">no sufficient patch set found '
            f"(search stopped: {escape(result.stop_reason)})</text>"
        )
    out.append("</svg>")
    return "\n".join(out)
