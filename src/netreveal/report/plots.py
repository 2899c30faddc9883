"""Small inline SVG charts for reports (no plotting library needed)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

COLOURS = ("#7a2c8f", "#e07b00", "#1f77b4", "#2ca02c")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi - lo < 1e-12:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 6)}f}" if abs(value) < 1e5 else f"{value:.3g}"


def line_chart_svg(
    series: dict[str, Sequence[float]],
    *,
    width: int = 360,
    height: int = 170,
    title: str = "",
    x_label: str = "iteration",
    x_start: int = 0,
) -> str:
    """Lines (one per named series) on shared axes with round ticks and grid lines, and a legend
    under the plot (one row per series, so it never covers a line). A plain SVG without style
    attributes, so pages under a strict Content-Security-Policy can inline it; it scales with its
    box (``max-width: 100%``). Point j of a series is at x = j + ``x_start``."""
    values = [v for s in series.values() for v in s if not math.isnan(v)]  # drop NaN
    length = max((len(s) for s in series.values()), default=0)
    if not values or length == 0:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    y_ticks = nice_ticks(lo, hi, 4)
    lo, hi = min(lo, y_ticks[0]), max(hi, y_ticks[-1])
    x0, x1 = x_start, x_start + max(length - 1, 1)
    x_ticks = [t for t in nice_ticks(x0, x1, 8) if float(t).is_integer()] or [x0, x1]
    left, right, top, plot_bottom = 40, 10, 22, height - 34
    pw, ph = width - left - right, plot_bottom - top
    total = height + 16 * len(series) + 4

    def px(x: float) -> float:
        return left + pw * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + ph * (1 - (y - lo) / (hi - lo))

    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
             f'viewBox="0 0 {width} {total}" class="chart" role="img">',
             f"<title>{html.escape(title)}</title>",
             f'<text x="{left}" y="14" font-size="13">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#9aa3b2"/>']
    for t in y_ticks:
        y = py(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6475">'
                     f"{_tick_text(t, y_step)}</text>")
    for t in x_ticks:
        x = px(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{plot_bottom}" stroke="#e6e9ef"/>'
                     f'<text x="{x:.1f}" y="{plot_bottom + 14}" font-size="11" text-anchor="middle" '
                     f'fill="#5b6475">{int(t)}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{plot_bottom + 29}" font-size="11" text-anchor="middle" '
                 f'fill="#5b6475">{html.escape(x_label)}</text>')
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{px(x_start + j):.1f},{py(v):.1f}" for j, v in enumerate(s) if not math.isnan(v))
        if pts:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        y = height + 16 * i + 8
        parts.append(f'<line x1="{left}" x2="{left + 16}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{left + 22}" y="{y + 4}" font-size="12" fill="#1d2430">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: dict[str, Sequence[float]],
    *,
    title: str,
    x_label: str = "iteration",
    y_range: tuple[float, float] | None = None,
    x_start: int = 1,
    height: int = 150,
) -> str:
    """A line chart (HTML with an inline SVG, styles inline) that fills its container's width:
    the lines stretch with it, the text keeps its size. Point j of a series is at x = j + ``x_start``;
    both axes have round ticks and grid lines; ``y_range`` fixes the y axis (else the data's range)."""
    values = [v for s in series.values() for v in s if not math.isnan(v)]
    length = max((len(s) for s in series.values()), default=0)
    if not values or length == 0:
        return ""
    lo, hi = y_range if y_range is not None else (min(values), max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    y_ticks = [t for t in nice_ticks(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]
    if y_range is None and y_ticks:  # widen to the outer ticks so the lines sit inside round numbers
        step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
        lo, hi = min(lo, y_ticks[0]), max(hi, y_ticks[-1])
        if lo < y_ticks[0] - 1e-9:
            y_ticks.insert(0, y_ticks[0] - step)
            lo = y_ticks[0]
        if hi > y_ticks[-1] + 1e-9:
            y_ticks.append(y_ticks[-1] + step)
            hi = y_ticks[-1]
    x0, x1 = x_start, x_start + max(length - 1, 1)
    x_ticks = [t for t in nice_ticks(x0, x1, 6) if float(t).is_integer()] or [x0, x1]
    if x_ticks[0] - x0 >= (x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1) / 2:
        x_ticks.insert(0, x0)  # the first point is labelled too

    def px(x: float) -> float:
        return 100 * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return 100 * (1 - (y - lo) / (hi - lo))

    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    grid = "".join(f'<line x1="0" x2="1000" y1="{10 * py(t):.1f}" y2="{10 * py(t):.1f}" stroke="#e6e9ef" '
                   f'vector-effect="non-scaling-stroke"/>' for t in y_ticks)
    grid += "".join(f'<line y1="0" y2="1000" x1="{10 * px(t):.1f}" x2="{10 * px(t):.1f}" stroke="#e6e9ef" '
                    f'vector-effect="non-scaling-stroke"/>' for t in x_ticks)
    lines, legend = [], []
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{10 * px(x_start + j):.1f},{10 * py(v):.1f}" for j, v in enumerate(s) if not math.isnan(v))
        if pts:
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'vector-effect="non-scaling-stroke" points="{pts}"/>')
        legend.append(f'<span style="white-space:nowrap;margin-right:12px"><span style="display:inline-block;'
                      f'width:14px;height:3px;background:{colour};vertical-align:middle;margin-right:4px"></span>'
                      f"{html.escape(name)}</span>")
    tick_style = "position:absolute;font-size:11px;line-height:1;color:#5b6475;white-space:nowrap"
    y_labels = "".join(f'<span style="{tick_style};right:100%;top:{py(t):.2f}%;transform:translateY(-50%);'
                       f'padding-right:5px">{_tick_text(t, y_step)}</span>' for t in y_ticks)
    x_labels = "".join(f'<span style="{tick_style};top:100%;left:{px(t):.2f}%;transform:translateX(-50%);'
                       f'padding-top:4px">{int(t)}</span>' for t in x_ticks)
    return (
        f'<figure class="line-chart" role="img" aria-label="{html.escape(title)}" '
        f'style="margin:0;min-width:0;flex:1 1 280px;max-width:720px">'
        f'<figcaption style="font-size:13px;color:#1d2430;max-width:none">{html.escape(title)}</figcaption>'
        f'<div style="font-size:12px;color:#5b6475;margin:2px 0 6px">{"".join(legend)}</div>'
        f'<div style="position:relative;height:{height}px;margin:0 8px 20px 46px;border-left:1px solid #9aa3b2;'
        f'border-bottom:1px solid #9aa3b2">'
        f'<svg viewBox="0 0 1000 1000" preserveAspectRatio="none" width="100%" height="100%" '
        f'style="position:absolute;inset:0;overflow:visible">{grid}{"".join(lines)}</svg>'
        f"{y_labels}{x_labels}</div>"
        f'<div style="font-size:11px;color:#5b6475;text-align:center;margin-left:46px">{html.escape(x_label)}</div>'
        f"</figure>"
    )
