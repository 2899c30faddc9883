"""A static HTML report of a user-study analysis: rating tables and bar chart with confidence
intervals, pairwise tests with Holm-adjusted p-values, forward simulation, novices vs experts,
participants' comments, and the raw data as CSV.

Every string that comes from users (title, method names, participant ids, comments) is escaped:
the page is rendered by Jinja2 with autoescaping and the chart is built with ``html.escape``.
The folder is written to a staging folder beside it and moved into place.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from netreveal.fileio import USER_STUDY_REPORT, staged_folder
from netreveal.formatting import fmt, fmt_p
from netreveal.userstudy.analysis import Analysis, MethodScore
from netreveal.userstudy.records import LIKERT

COLOURS = ["#7a2c8f", "#e07b00", "#1f77b4", "#2ca02c", "#d62728", "#8c564b", "#17becf", "#7f7f7f"]


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
             f"<title>mean rating per method with {confidence:.0%} confidence intervals</title>"]
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


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  body { font: 15px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; color: #1d2430; background: #f6f7f9; margin: 0; }
  header { background: #fff; border-bottom: 1px solid #dde2ea; padding: 16px 24px; }
  header h1 { margin: 0; font-size: 22px; }
  main { padding: 16px 24px; max-width: 1200px; overflow-wrap: anywhere; }
  table { border-collapse: collapse; background: #fff; margin: 8px 0 20px; }
  th, td { border: 1px solid #dde2ea; padding: 4px 10px; text-align: right; white-space: nowrap; overflow-wrap: normal; }
  td.name { white-space: normal; overflow-wrap: anywhere; max-width: 260px; }
  th:first-child, td:first-child, td.name { text-align: left; }
  th { background: #eef0f4; }
  .muted { color: #5b6475; font-size: 13px; }
  .sig { font-weight: 600; color: #1c7c3a; }
  blockquote { background: #fff; border-left: 3px solid #7a2c8f; margin: 6px 0; padding: 4px 10px; white-space: pre-wrap; }
  .scroll { overflow-x: auto; }
</style>
</head>
<body>
<header><h1>{{ title }}</h1></header>
<main>
<p>{{ a.participants|length }} participants analysed{% if a.excluded %}, {{ a.excluded|length }} excluded after failing an
attention check ({{ a.excluded|join(", ") }}){% endif %}; methods: {{ a.methods|join(", ") }}.
Raw data: <a href="responses.csv">responses.csv</a> (one row per response) · <a href="analysis.json">analysis.json</a>.</p>

<h2 id="ratings">Ratings</h2>
<p class="muted">Mean of the per-participant mean ratings (1–5) ± half-width of its {{ pct }} confidence interval
(Student t over participants).</p>
{% for scale in a.scales %}
<h3>{{ scale }}</h3>
<div class="scroll"><table>
<tr><th>method</th><th>participants</th><th>mean ± CI</th><th>{{ pct }} CI</th><th>sd</th></tr>
{% for s in scores[scale] %}<tr><td class="name">{{ s.method }}</td><td>{{ s.n }}</td><td>{{ fmt(s.mean) }} ± {{ fmt(half(s)) }}</td>
<td>[{{ fmt(s.ci_low) }}, {{ fmt(s.ci_high) }}]</td><td>{{ fmt(s.sd) }}</td></tr>
{% endfor %}</table></div>
{% endfor %}
{{ chart }}

<h2 id="pairs">Method comparisons</h2>
<p class="muted">{{ a.procedures["method comparison"] }}. W = min(R+, R−); r = matched-pairs rank-biserial
correlation; marks on Holm-adjusted p: * &lt; {{ a.alpha }}, ** &lt; 0.01, *** &lt; 0.001.</p>
{% if a.pairs %}<div class="scroll"><table>
<tr><th>scale</th><th>method A</th><th>method B</th><th>participants</th><th>mean A − B</th><th>W</th><th>r</th>
<th>p</th><th>p (Holm)</th><th></th><th>p from</th></tr>
{% for t in a.pairs %}<tr><td>{{ t.scale }}</td><td class="name">{{ t.method_a }}</td><td class="name">{{ t.method_b }}</td>
<td>{{ t.n_pairs }}</td><td>{{ fmt(t.mean_diff) }}</td><td>{{ fmt(t.statistic, 1) }}</td><td>{{ fmt(t.effect) }}</td>
<td>{{ fmt_p(t.p) }}</td><td>{{ fmt_p(t.p_holm) }}</td><td class="{{ 'sig' if t.significant else 'muted' }}">{{ mark(t.p_holm, t.significant) }}</td>
<td class="muted">{{ t.p_method }}</td></tr>
{% endfor %}</table></div>{% else %}<p>Fewer than two methods were rated.</p>{% endif %}

<h2 id="forward">Forward simulation</h2>
<p class="muted">Share of questions where the participant predicted the model's output; accuracy = mean of
per-participant accuracies with its {{ pct }} t interval, pooled = correct / answers. {{ a.procedures["forward simulation"] }}.</p>
{% if a.forward %}<div class="scroll"><table>
<tr><th>condition</th><th>method</th><th>participants</th><th>answers</th><th>correct</th><th>accuracy</th><th>{{ pct }} CI</th><th>pooled</th></tr>
{% for f in a.forward %}<tr><td>{{ f.condition }}</td><td class="name">{{ f.method if f.method is not none else "any" if f.condition == "with" else "–" }}</td>
<td>{{ f.n_participants }}</td><td>{{ f.n_answers }}</td><td>{{ f.n_correct }}</td><td>{{ fmt(f.accuracy, 3) }}</td>
<td>[{{ fmt(f.ci_low, 3) }}, {{ fmt(f.ci_high, 3) }}]</td><td>{{ fmt(f.pooled, 3) }}</td></tr>
{% endfor %}</table></div>
{% if a.forward_tests %}<div class="scroll"><table>
<tr><th>explanations by</th><th>participants</th><th>accuracy with</th><th>without</th><th>difference</th><th>W</th><th>r</th>
<th>p</th><th>p (Holm)</th><th></th></tr>
{% for t in a.forward_tests %}<tr><td class="name">{{ t.method if t.method is not none else "any method" }}</td><td>{{ t.n_participants }}</td>
<td>{{ fmt(t.accuracy_with, 3) }}</td><td>{{ fmt(t.accuracy_without, 3) }}</td><td>{{ fmt(t.mean_diff, 3) }}</td>
<td>{{ fmt(t.statistic, 1) }}</td><td>{{ fmt(t.effect) }}</td><td>{{ fmt_p(t.p) }}</td><td>{{ fmt_p(t.p_holm) }}</td>
<td class="{{ 'sig' if t.significant else 'muted' }}">{{ mark(t.p_holm, t.significant) }}</td></tr>
{% endfor %}</table></div>{% endif %}
{% else %}<p>No forward-simulation answers.</p>{% endif %}

<h2 id="background">Novices and experts</h2>
{% if a.background %}<p class="muted">{{ a.procedures["backgrounds"] }}. U is the novices' statistic;
P(N&gt;E) = U / (n_novice · n_expert).</p>
<div class="scroll"><table>
<tr><th>scale</th><th>method</th><th>novices</th><th>experts</th><th>mean novices</th><th>mean experts</th><th>U</th>
<th>P(N&gt;E)</th><th>p</th><th>p (Holm)</th><th></th></tr>
{% for t in a.background %}<tr><td>{{ t.scale }}</td><td class="name">{{ t.method }}</td><td>{{ t.n_novice }}</td><td>{{ t.n_expert }}</td>
<td>{{ fmt(t.mean_novice) }}</td><td>{{ fmt(t.mean_expert) }}</td><td>{{ fmt(t.u, 1) }}</td><td>{{ fmt(t.effect) }}</td>
<td>{{ fmt_p(t.p) }}</td><td>{{ fmt_p(t.p_holm) }}</td><td class="{{ 'sig' if t.significant else 'muted' }}">{{ mark(t.p_holm, t.significant) }}</td></tr>
{% endfor %}</table></div>
{% else %}<p>Not compared: the analysed participants did not declare both backgrounds.</p>{% endif %}

{% if a.comments %}<h2 id="comments">Comments</h2>
{% for who, text in a.comments %}<blockquote><span class="muted">{{ who }}:</span> {{ text }}</blockquote>
{% endfor %}{% endif %}

<details><summary>Procedures and versions</summary><pre>{{ meta }}</pre></details>
</main>
</body>
</html>
"""


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
        env = Environment(autoescape=True)
        chart = bar_chart_svg(analysis.scores, analysis.methods, analysis.scales, confidence=analysis.confidence)
        page = env.from_string(PAGE).render(
            title=title, a=analysis, chart=Markup(chart), pct=f"{analysis.confidence:.0%}",
            scores={scale: [s for s in analysis.scores if s.scale == scale] for scale in analysis.scales},
            fmt=fmt, fmt_p=fmt_p, mark=mark, half=lambda s: s.ci_high - s.mean,
            meta=json.dumps({"procedures": data["procedures"], "provenance": data["provenance"]}, indent=2),
        )
        (stage / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"
