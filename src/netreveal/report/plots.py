"""Small inline SVG charts for reports (no plotting library needed)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence


def line_chart_svg(
    series: dict[str, Sequence[float]],
    *,
    width: int = 220,
    height: int = 120,
    title: str = "",
    x_label: str = "iteration",
) -> str:
    """Lines (one per named series) on shared axes, with min/max ticks."""
    values = [v for s in series.values() for v in s if not math.isnan(v)]  # drop NaN
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    left, right, top, bottom = 34, 6, 16, 22
    pw, ph = width - left - right, height - top - bottom
    colours = ["#7a2c8f", "#e07b00", "#1f77b4", "#2ca02c"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart" role="img">',
             f'<title>{html.escape(title)}</title>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccd"/>',
             f'<text x="{left}" y="11" font-size="10">{html.escape(title)}</text>',
             f'<text x="{left - 3}" y="{top + 8}" font-size="9" text-anchor="end">{hi:.3g}</text>',
             f'<text x="{left - 3}" y="{top + ph}" font-size="9" text-anchor="end">{lo:.3g}</text>',
             f'<text x="{left + pw / 2}" y="{height - 4}" font-size="9" text-anchor="middle">'
             f'{html.escape(x_label)}</text>']
    for i, (name, s) in enumerate(series.items()):
        s = list(s)
        if not s:
            continue
        n = max(len(s) - 1, 1)
        pts = " ".join(f"{left + pw * j / n:.1f},{top + ph * (1 - (v - lo) / (hi - lo)):.1f}"
                       for j, v in enumerate(s) if not math.isnan(v))
        colour = colours[i % len(colours)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}"/>')
        parts.append(f'<text x="{left + pw - 2}" y="{top + 10 + 10 * i}" font-size="9" text-anchor="end" '
                     f'fill="{colour}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
