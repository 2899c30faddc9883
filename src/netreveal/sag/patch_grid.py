"""The explained image with its patch grid and patch ids (P0 top left, row by row), as an SVG:
what "P24" in a Structured Attention Graph refers to."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from netreveal.sag.svg import png_data_uri, thumbnail

HIGHLIGHT = "#ffd54f"  # outline of the patches in the drawn roots


def render_patch_grid_svg(image: torch.Tensor, grid: int, highlight: Iterable[int] = (), *,
                          size: int = 224) -> str:
    """SVG markup of ``image`` ((3, H, W) or (1, 3, H, W) in [0, 1]) drawn ``size`` pixels wide
    with a ``grid`` x ``grid`` patch grid, each cell labelled with its id (row * grid + col);
    ``highlight`` patches are outlined. It scales down to its box (viewBox, max-width)."""
    if image.dim() == 4:
        image = image[0]
    uri = png_data_uri(thumbnail(image, size))
    cell = size / grid
    font = max(6.0, min(10.0, 0.3 * cell))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sag-patch-grid" viewBox="0 0 {size} {size}" '
           f'width="{size}" height="{size}" style="width:100%;max-width:{size}px;height:auto" '
           f'font-family="sans-serif" font-size="{font:.1f}" role="img" '
           f'aria-label="the image divided into {grid} x {grid} patches, P0 to P{grid * grid - 1}">',
           f'<image x="0" y="0" width="{size}" height="{size}" href="{uri}"/>']
    lines = []
    for k in range(1, grid):
        at = k * cell
        lines.append(f"M{at:.1f} 0V{size}M0 {at:.1f}H{size}")
    if lines:
        out.append(f'<path d="{"".join(lines)}" stroke="#fff" stroke-opacity="0.7" stroke-width="1"/>')
    for p in sorted(set(highlight)):
        if 0 <= p < grid * grid:
            r, c = divmod(p, grid)
            out.append(f'<rect x="{c * cell + 1:.1f}" y="{r * cell + 1:.1f}" width="{cell - 2:.1f}" '
                       f'height="{cell - 2:.1f}" fill="none" stroke="{HIGHLIGHT}" stroke-width="2"/>')
    for p in range(grid * grid):
        r, c = divmod(p, grid)
        out.append(f'<text x="{c * cell + 2:.1f}" y="{r * cell + font + 1:.1f}" fill="#fff" stroke="#000" '
                   f'stroke-width="2.2" stroke-opacity="0.75" paint-order="stroke">P{p}</text>')
    out.append("</svg>")
    return "\n".join(out)
