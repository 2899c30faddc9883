"""A static HTML report of a user-study analysis: rating tables and bar chart with confidence
intervals, pairwise tests with Holm-adjusted p-values, forward simulation, novices vs experts,
participants' comments, and the raw data as CSV; a warning when a method has few participants.

The page is the template ``report/templates/userstudy.html.j2`` (on the analysis pages' shared
layout, :mod:`netreveal.report_pages`); this module prepares its tables as rows of cells with
numbers formatted by :mod:`netreveal.formatting`, and the chart as inline SVG. Every string that
comes from users (title, method names, participant ids, comments) is escaped: Jinja2 autoescapes
the page and the chart is built with ``html.escape``. The folder is written to a temporary
sibling and moved into place.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from markupsafe import Markup

from netreveal.fileio import USER_STUDY_REPORT, staged_folder
from netreveal.formatting import fmt, fmt_p
from netreveal.report_pages import Cell, Table, name, render_page
from netreveal.userstudy.analysis import Analysis, MethodScore
from netreveal.userstudy.records import LIKERT

COLOURS = ["#7a2c8f", "#e07b00", "#1f77b4", "#2ca02c", "#d62728", "#8c564b", "#17becf", "#7f7f7f"]


def percent(share: float) -> str:
    """A share as a whole percentage ("95%"), through :func:`netreveal.formatting.fmt`."""
    return fmt(100 * share, 0) + "%"


def mark(p: float | None, significant: bool) -> str:
    """Significance mark of an adjusted p-value: *, ** (p < 0.01), *** (p < 0.001) or n.s."""
    if not significant or p is None or math.isnan(p):
        return "n.s."
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"


def bar_chart_svg(scores: list[MethodScore], methods: list[str], scales: list[str], *,
                  low: float = LIKERT[0], high: float = LIKERT[1], confidence: float = 0.95) -> str:
    """Grouped bars (one group per scale, one bar per method) of mean ratings with CI whiskers."""
    by_key = {(s.scale, s.method): s for s in scores}
    bar, gap, left, top, plot_h = 36, 36, 40, 14, 200
    group_w = bar * len(methods)
    width = left + len(scales) * (group_w + gap) + 10
    height = top + plot_h + 40 + 16 * len(methods)

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, low), high) - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart" role="img">',
             f"<title>mean rating per method with {percent(confidence)} confidence intervals</title>"]
    for tick in range(int(low), int(high) + 1):
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#dde2ea"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick}</text>')
    for g, scale in enumerate(scales):
        x0 = left + gap / 2 + g * (group_w + gap)
        parts.append(f'<text x="{x0 + group_w / 2:.1f}" y="{top + plot_h + 16}" font-size="12" '
                     f'text-anchor="middle">{html.escape(scale)}</text>')
        for i, method in enumerate(methods):
            s = by_key.get((scale, method))
            if s is None or math.isnan(s.mean):
                continue
            x = x0 + i * bar
            colour = COLOURS[i % len(COLOURS)]
            tip = f"{method} · {scale}: {fmt(s.mean)} [{fmt(s.ci_low)}, {fmt(s.ci_high)}], n={s.n}"
            parts.append(f'<rect x="{x + 2:.1f}" y="{y(s.mean):.1f}" width="{bar - 4}" '
                         f'height="{y(low) - y(s.mean):.1f}" fill="{colour}"><title>{html.escape(tip)}</title></rect>')
            if not math.isnan(s.ci_low):
                cx, y1, y2 = x + bar / 2, y(s.ci_low), y(s.ci_high)
                parts.append(f'<path d="M{cx:.1f},{y1:.1f}V{y2:.1f}M{cx - 5:.1f},{y1:.1f}h10M{cx - 5:.1f},{y2:.1f}h10" '
                             f'stroke="#1d2430" stroke-width="1.5" fill="none"/>')
    for i, method in enumerate(methods):
        ly = top + plot_h + 34 + 16 * i
        parts.append(f'<rect x="{left}" y="{ly - 10}" width="12" height="12" fill="{COLOURS[i % len(COLOURS)]}"/>'
                     f'<text x="{left + 18}" y="{ly}" font-size="12">{html.escape(method)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _verdict(p_holm: float | None, significant: bool) -> Cell:
    return Cell(mark(p_holm, significant), "sig" if significant else "muted")


def rating_tables(a: Analysis) -> dict[str, Table]:
    """Per scale: one row per method (participants, mean ± half-width, clipped interval, sd)."""
    out = {}
    for scale in a.scales:
        table = Table(["method", "participants", "mean ± CI", f"{percent(a.confidence)} CI", "sd"])
        for s in a.scores:
            if s.scale == scale:
                table.add([name(s.method), str(s.n), f"{fmt(s.mean)} ± {fmt(s.half_width)}",
                           f"[{fmt(s.ci_low)}, {fmt(s.ci_high)}]", fmt(s.sd)])
        out[scale] = table
    return out


def pair_table(a: Analysis) -> Table:
    """Every compared pair of methods per scale, with its Wilcoxon test."""
    table = Table(["scale", "method A", "method B", "participants", "mean A − B", "W", "r", "p", "p (Holm)", "",
                   "p from"])
    for t in a.pairs:
        table.add([t.scale, name(t.method_a), name(t.method_b), str(t.n_pairs), fmt(t.mean_diff), fmt(t.statistic, 1),
                   fmt(t.effect), fmt_p(t.p), fmt_p(t.p_holm), _verdict(t.p_holm, t.significant),
                   Cell(t.p_method, "muted")])
    return table


def forward_table(a: Analysis) -> Table:
    """Forward-simulation accuracy per condition (and method), pooled with its Wilson interval."""
    table = Table(["condition", "method", "participants", "answers", "correct", "accuracy", "pooled",
                   f"{percent(a.confidence)} CI (pooled)"])
    for f in a.forward:
        method = f.method if f.method is not None else "any" if f.condition == "with" else "–"
        table.add([f.condition, name(method), str(f.n_participants), str(f.n_answers), str(f.n_correct),
                   fmt(f.accuracy, 3), fmt(f.pooled, 3), f"[{fmt(f.ci_low, 3)}, {fmt(f.ci_high, 3)}]"])
    return table


def forward_test_table(a: Analysis) -> Table:
    """With against without explanations, per method and for any method."""
    table = Table(["explanations by", "participants", "accuracy with", "without", "difference", "W", "r", "p",
                   "p (Holm)", ""])
    for t in a.forward_tests:
        table.add([name(t.method if t.method is not None else "any method"), str(t.n_participants),
                   fmt(t.accuracy_with, 3), fmt(t.accuracy_without, 3), fmt(t.mean_diff, 3), fmt(t.statistic, 1),
                   fmt(t.effect), fmt_p(t.p), fmt_p(t.p_holm), _verdict(t.p_holm, t.significant)])
    return table


def background_table(a: Analysis) -> Table:
    """Novices against experts per scale and method."""
    table = Table(["scale", "method", "novices", "experts", "mean novices", "mean experts", "U", "P(N>E)", "p",
                   "p (Holm)", ""])
    for t in a.background:
        table.add([t.scale, name(t.method), str(t.n_novice), str(t.n_expert), fmt(t.mean_novice), fmt(t.mean_expert),
                   fmt(t.u, 1), fmt(t.effect), fmt_p(t.p), fmt_p(t.p_holm), _verdict(t.p_holm, t.significant)])
    return table


def write_analysis_report(analysis: Analysis, out_dir: str | os.PathLike, title: str = "User study", *,
                          force: bool = False) -> Path:
    """Write ``out_dir/index.html`` with ``responses.csv`` and ``analysis.json`` beside it; returns
    the index path. ``out_dir`` must be free or empty, or (with ``force``) hold an earlier
    user-study report, which is replaced only once the new one is complete."""
    out_dir = Path(out_dir)
    with staged_folder(out_dir, USER_STUDY_REPORT, force=force, label="userstudy") as stage:
        analysis.write_csv(stage / "responses.csv")
        data = analysis.to_dict()
        (stage / "analysis.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        chart = bar_chart_svg(analysis.scores, analysis.methods, analysis.scales, confidence=analysis.confidence)
        page = render_page(
            "userstudy.html.j2", title=title, a=analysis, pct=percent(analysis.confidence), chart=Markup(chart),
            few=analysis.few_participants(), ratings=rating_tables(analysis), pairs=pair_table(analysis),
            forward=forward_table(analysis), forward_tests=forward_test_table(analysis),
            background=background_table(analysis), meta_title="Procedures and versions",
            meta=json.dumps({"procedures": data["procedures"], "provenance": data["provenance"]}, indent=2),
        )
        (stage / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"
