"""The static HTML report of a study's label analysis (:class:`netreveal.labels.analysis.StudyAnalysis`).

Sections: global explanations (per class and layer, top labels as SVG bar charts, with a table of
scores, image counts, mean weights and example images), label trends across depth (SVG lines and
a table with least-squares slopes), the naming studio's inter-annotator agreement, TCAV of the top
label concepts (non-significant results marked), local explanations per image (each layer's
cluster maps over the image, with their best labels and weights; clusters sharing a best label
merged), and the parameters, seed and versions. ``analysis.json`` beside ``index.html`` holds the
numbers.

Every string that comes from people or the study (labels, image keys, class, layer and annotator
names) is escaped: the page is rendered by Jinja2 with autoescaping and the SVG charts are built
with ``html.escape``. The folder is written to a temporary sibling and moved into place.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from netreveal.errors import NetrevealError
from netreveal.fileio import LABEL_REPORT, check_output_folder, staged_folder
from netreveal.formatting import fmt, fmt_p
from netreveal.labels.analysis import StudyAnalysis
from netreveal.report.plots import line_chart_svg

BAR_COLOUR = "#7a2c8f"
TREND_WORDS = 8  # labels per class in the trend table (highest summed score)
TREND_LINES = 4  # of which the steepest are drawn


def bars_svg(rows: Sequence[tuple[str, float, str]], *, title: str = "", width: int = 260,
             max_value: float | None = None) -> str:
    """Horizontal bars: one ``(label, value, note)`` per row (note shown after the value, e.g.
    "3 images"), longest bar = ``max_value`` (default the largest value). Text is escaped."""
    bar_h, gap, top, label_w, value_w = 14, 5, 18 if title else 4, 92, 92
    plot_w = max(40, width - label_w - value_w)
    height = top + len(rows) * (bar_h + gap) + 2
    peak = max([v for _, v, _ in rows if not math.isnan(v)] + [0.0]) if max_value is None else float(max_value)
    peak = peak if peak > 0 else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="bars" role="img">',
             f"<title>{html.escape(title)}</title>"]
    if title:
        parts.append(f'<text x="0" y="12" font-size="11" font-weight="600">{html.escape(title)}</text>')
    for k, (label, value, note) in enumerate(rows):
        y = top + k * (bar_h + gap)
        w = max(1.0, plot_w * max(0.0, min(value, peak)) / peak)
        short = label if len(label) <= 16 else label[:15] + "…"
        tip = f"{label}: {value:.2f}" + (f" ({note})" if note else "")
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" font-size="11" text-anchor="end">{html.escape(short)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{BAR_COLOUR}">'
                     f"<title>{html.escape(tip)}</title></rect>"
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" font-size="10" fill="#5b6475">'
                     f"{value:.2f}{(' · ' + html.escape(note)) if note else ''}</text>")
    parts.append("</svg>")
    return "".join(parts)


def global_charts(analysis: StudyAnalysis) -> dict[str, list[dict]]:
    """Per class (study order), per layer: the global explanation with its bar chart (SVG)."""
    out: dict[str, list[dict]] = defaultdict(list)
    for g in analysis.explanations.global_explanations:
        rows = [(lab.word, lab.score, f"{lab.count} map{'s' if lab.count != 1 else ''}") for lab in g.labels]
        out[g.image_class].append({"g": g, "svg": Markup(bars_svg(rows, title=g.layer)) if rows else None})
    order = {c: i for i, c in enumerate(analysis.classes)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def short_layer_names(layers: Sequence[str]) -> list[str]:
    """Layer names without the dotted prefix they all share ("features.block1.conv2" ->
    "block1.conv2"); the full names when that would leave a name empty or two alike."""
    parts = [layer.split(".") for layer in layers]
    common = 0
    while parts and all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    short = [".".join(p[common:]) for p in parts]
    return short if len(set(short)) == len(short) and all(short) else list(layers)


def class_trends(analysis: StudyAnalysis, n_words: int = TREND_WORDS, n_lines: int = TREND_LINES) -> dict[str, dict]:
    """Per class: the ``n_words`` labels with the highest summed score (rows sorted by slope)
    and a line chart of the ``n_lines`` steepest of them."""
    by_class: dict[str, list] = defaultdict(list)
    for t in analysis.explanations.trends:
        by_class[t.image_class].append(t)
    out = {}
    short = short_layer_names(analysis.layers)
    order = {c: i for i, c in enumerate(analysis.classes)}
    for cls in sorted(by_class, key=lambda c: (order.get(c, len(order)), c)):
        words = sorted(by_class[cls], key=lambda t: (-sum(t.scores), t.word))[:n_words]
        words.sort(key=lambda t: (-t.slope, t.word))
        steep = sorted(words, key=lambda t: (-abs(t.slope), t.word))[:n_lines]
        chart = line_chart_svg({t.word: t.scores for t in steep}, width=320, height=150,
                               title=f"{cls}: label score by layer", x_label="layer, shallow → deep")
        out[cls] = {"rows": words, "chart": Markup(chart) if chart else None}
    return {"layers": short, "classes": out}


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
  header nav a { margin-right: 12px; color: #7a2c8f; }
  main { padding: 16px 24px; max-width: 1400px; overflow-wrap: anywhere; }
  table { border-collapse: collapse; background: #fff; margin: 8px 0 16px; }
  th, td { border: 1px solid #dde2ea; padding: 4px 8px; text-align: right; vertical-align: top; }
  th:first-child, td:first-child, td.name { text-align: left; }
  th { background: #eef0f4; }
  .muted { color: #5b6475; font-size: 13px; }
  .card { background: #fff; border: 1px solid #dde2ea; border-radius: 8px; padding: 12px 16px; margin: 14px 0; }
  .card h3 { margin: 0 0 8px; font-size: 17px; }
  .grid { display: flex; flex-wrap: wrap; gap: 10px 22px; align-items: flex-start; }
  .layer-chart .muted { margin: 0; }
  .scroll { overflow-x: auto; max-width: 100%; }
  .sig { font-weight: 600; color: #1c7c3a; }
  .ns { color: #8a8f99; }
  img.thumb { width: 72px; height: 72px; border-radius: 3px; display: block; }
  img.input { width: 128px; height: 128px; border-radius: 4px; }
  img.ex { width: 40px; height: 40px; border-radius: 3px; vertical-align: middle; }
  .entry { display: inline-flex; gap: 6px; align-items: flex-start; margin: 4px 14px 4px 0; }
  .entry .maps { display: flex; gap: 2px; }
  .entry ul { list-style: none; margin: 0; padding: 0; font-size: 13px; }
  .entry .best { font-weight: 700; }
  .image-head { display: flex; gap: 14px; align-items: flex-start; }
  td.layer { font-size: 13px; font-weight: 600; white-space: nowrap; }
  td.entries { text-align: left; }
  details pre { background: #fff; border: 1px solid #dde2ea; padding: 8px; overflow: auto; }
</style>
</head>
<body>
<header><h1>{{ title }}</h1>
<nav><a href="#global">Global</a><a href="#trends">Trends</a><a href="#agreement">Agreement</a><a href="#tcav">TCAV</a>
<a href="#images">Images</a><a href="#parameters">Parameters</a></nav></header>
<main>
<p>Study <b>{{ a.study }}</b>: {{ a.images|length }} images, {{ a.items|length }} cluster maps,
{{ a.n_labels }} labels{% if a.sources %} ({% for s, n in a.sources|dictsort %}{{ n }} from {{ s }}{{ ", " if not loop.last }}{% endfor %}){% endif %}
by {{ a.n_players }} players; layers shallow to deep: {{ a.layers|join(", ") }}.
Label embeddings: {{ a.provenance.embedding_model }}. Numbers: <a href="analysis.json">analysis.json</a>.</p>
<p class="muted">A label's score is the sum over the players who gave it of (1 − 0.1 × reveal step), a wrong class
guess counting a quarter. Per image and layer, cluster maps sharing a best label are merged (weights summed);
a global explanation sums, per class and layer, the best-label scores over the class's images.</p>

<h2 id="global">Global explanations</h2>
{% for cls, layers in charts.items() %}
<section class="card" id="class-{{ loop.index }}">
  <h3>{{ cls }}</h3>
  <div class="grid">
  {% for c in layers %}
    <div class="layer-chart">{% if c.svg %}{{ c.svg }}{% else %}<b>{{ c.g.layer }}</b><p class="muted">no best label</p>{% endif %}
      <p class="muted">{{ c.g.n_images }} image{{ "s" if c.g.n_images != 1 }}</p></div>
  {% endfor %}
  </div>
  <details><summary>Table</summary><div class="scroll"><table>
  <tr><th>layer</th><th>label</th><th>score</th><th>maps</th><th>mean weight %</th><th>examples</th></tr>
  {% for c in layers %}{% for lab in c.g.labels %}<tr><td>{{ c.g.layer }}</td><td class="name">{{ lab.word }}</td>
  <td>{{ fmt(lab.score) }}</td><td>{{ lab.count }}</td><td>{{ fmt(lab.mean_weight, 1) }}</td>
  <td class="name">{% for key in lab.examples %}{% set k = image_index.get(key) %}{% if k is not none %}<a href="#img-{{ k }}" title="{{ key }}"><img class="ex" src="{{ inputs[k] }}" alt="{{ key }}"></a>{% else %}{{ key }}{% endif %} {% endfor %}</td></tr>
  {% endfor %}{% endfor %}
  </table></div></details>
</section>
{% else %}<p>No label has a best label yet.</p>{% endfor %}

<h2 id="trends">Label trends across depth</h2>
<p class="muted">Per class, the labels with the highest summed score: their summed best-label score at each layer
and the least-squares slope over depth (layer index 0, 1, …); rising labels first. The chart draws the steepest.</p>
{% for cls, t in trends.classes.items() %}
<section class="card">
  <h3>{{ cls }}</h3>
  <div class="grid">{% if t.chart %}<div>{{ t.chart }}</div>{% endif %}
  <div class="scroll"><table>
  <tr><th>label</th>{% for layer in trends.layers %}<th title="{{ a.layers[loop.index0] }}">{{ layer }}</th>{% endfor %}<th>slope</th></tr>
  {% for row in t.rows %}<tr><td class="name">{{ row.word }}</td>{% for v in row.scores %}<td>{{ fmt(v, 1) }}</td>{% endfor %}
  <td>{{ "%+.2f"|format(row.slope) }}</td></tr>{% endfor %}
  </table></div></div>
</section>
{% endfor %}

<h2 id="agreement">Naming-studio agreement</h2>
{% set ag = a.agreement %}
{% if not ag.annotators %}<p>No annotators yet: nobody has named concepts for this study in the naming studio.</p>
{% else %}
<p class="muted">Over the study's {{ ag.n_maps }} maps. Coverage: share of the maps an annotator put in a concept.
ARI / AMI: adjusted Rand index and adjusted mutual information of two groupings over the maps both named; name
similarity: cosine similarity of the names of concepts matched by overlap (exact: same cleaned name), weighted by
the maps they share.</p>
<div class="scroll"><table>
<tr><th>annotator</th><th>concepts</th><th>named maps</th><th>coverage</th></tr>
{% for p in ag.annotators %}<tr><td class="name">{{ p.name }}</td><td>{{ p.concepts }}</td><td>{{ p.named_maps }}</td><td>{{ fmt(p.coverage, 3) }}</td></tr>{% endfor %}
</table></div>
{% if ag.report %}
<div class="scroll"><table>
<tr><th>annotator A</th><th>annotator B</th><th>maps both named</th><th>ARI</th><th>AMI</th><th>name similarity</th><th>exact names</th></tr>
{% for p in ag.report.pairs %}<tr><td class="name">{{ p.a }}</td><td class="name">{{ p.b }}</td><td>{{ p.n_common }}</td>
<td>{{ fmt(p.ari, 3) }}</td><td>{{ fmt(p.ami, 3) }}</td><td>{{ fmt(p.name_similarity, 3) }}</td><td>{{ fmt(p.name_exact, 3) }}</td></tr>{% endfor %}
<tr><td colspan="3">mean over pairs</td><td>{{ fmt(ag.report.mean_ari, 3) }}</td><td>{{ fmt(ag.report.mean_ami, 3) }}</td>
<td>{{ fmt(ag.report.mean_name_similarity, 3) }}</td><td></td></tr>
</table></div>
{% else %}<p>One annotator so far: agreement needs two.</p>{% endif %}
{% endif %}

<h2 id="tcav">TCAV of label concepts</h2>
{% if a.tcav is none %}<p>Not run (<code>netreveal labels analyse --tcav</code> validates each class's top labels on the study's model).</p>
{% else %}
<p class="muted">Each class's top labels as concepts: images of the regions their cluster maps reveal against random
regions of the study's images, {{ a.tcav.params.n_runs }} runs each, at {% if a.tcav.params.layers == "best" %}the layer
where the label scores highest for the class{% elif a.tcav.params.layers == "named" %}every layer where the label is one
of the class's top labels{% else %}the chosen layers{% endif %}; TCAV score = share of the class's images whose
class logit grows along the concept's direction; two-sided t-test against random-vs-random runs at
α = {{ a.tcav.params.alpha }}. Non-significant results are marked n.s.</p>
{% if a.tcav.rows %}<div class="scroll"><table>
<tr><th>class</th><th>concept</th><th>layer</th><th>TCAV</th><th>± sd</th><th>random</th><th>p</th><th></th><th>CAV accuracy</th><th>concept maps</th><th>class images</th></tr>
{% for r in a.tcav.rows %}<tr class="{{ 'sig-row' if r.significant else 'ns-row' }}"><td class="name">{{ r.image_class }}</td><td class="name">{{ r.concept }}</td><td>{{ r.layer }}</td>
<td>{{ fmt(r.score) }}</td><td>{{ fmt(r.score_std) }}</td><td>{{ fmt(r.random) }}</td><td>{{ fmt_p(r.p_value) }}</td>
<td class="{{ 'sig' if r.significant else 'ns' }}">{{ ("significant, " ~ r.direction) if r.significant else "n.s." }}</td>
<td>{{ fmt(r.cav_accuracy) }}</td><td>{{ r.n_concept_images }}</td><td>{{ r.n_class_images }}</td></tr>{% endfor %}
</table></div>{% else %}<p>No concept could be tested.</p>{% endif %}
{% if a.tcav.skipped %}<p class="muted">Not tested: {% for s in a.tcav.skipped %}{{ s.concept }} ({{ s["class"] }}: {{ s.reason }}){{ "; " if not loop.last }}{% endfor %}.</p>{% endif %}
{% endif %}

<h2 id="images">Local explanations</h2>
<p class="muted">Per image and layer: the cluster maps over the image, each group with its best labels (score) and
its weight (share of the layer's evidence, percent).</p>
{% for img in local %}
<section class="card" id="img-{{ img.k }}">
  <div class="image-head"><img class="input" src="{{ inputs[img.k] }}" alt="input image {{ img.info.key }}">
  <div><h3>{{ img.info.key }}</h3><p>predicted <b>{{ img.info.predicted_class }}</b> ({{ "%.0f"|format(100 * img.info.probability) }}%)
  {% if img.info.true_class %} · true {{ img.info.true_class }}{% endif %}</p>
  <p class="muted">{{ img.n_maps }} labelled cluster maps</p></div></div>
  <div class="scroll"><table>
  {% for layer in img.layers %}<tr><td class="layer">{{ layer.name }}</td><td class="entries">
  {% for e in layer.entries %}<div class="entry"><div class="maps">{% for src in e.thumbs %}<img class="thumb" src="{{ src }}" alt="cluster map {{ e.clusters[loop.index0] }} of {{ layer.name }}">{% endfor %}</div>
  <ul><li class="muted">{% if e.clusters|length > 1 %}clusters {{ e.clusters|join(" + ") }} merged{% else %}cluster {{ e.clusters[0] }}{% endif %} · {{ fmt(e.weight, 1) }}%</li>
  {% for lab in e.labels %}<li class="{{ 'best' if loop.first }}">{{ lab.word }} <span class="muted">{{ fmt(lab.score) }}</span></li>{% else %}<li class="muted">no usable label</li>{% endfor %}</ul></div>
  {% endfor %}</td></tr>{% endfor %}
  </table></div>
</section>
{% endfor %}

<h2 id="parameters">Parameters and versions</h2>
<details><summary>Parameters, seed and versions</summary><pre>{{ meta }}</pre></details>
</main>
</body>
</html>
"""


def check_out_dir(out: Path, force: bool = False) -> None:
    """NetrevealError unless ``out`` is free, an empty folder or (with ``force``) an earlier label report."""
    check_output_folder(out, LABEL_REPORT, force=force)


class _Pictures:
    """PNG files of the report: input images and cluster maps over their images."""

    def __init__(self, stage: Path, analysis: StudyAnalysis):
        from netreveal.store.studies import png_tensor

        self.stage, self.analysis, self._decode = stage, analysis, png_tensor
        (stage / "img").mkdir()
        self._tensors: dict[int, object] = {}
        self.count = 0

    def tensor(self, media_id: int):
        if media_id not in self._tensors:
            data = self.analysis.pictures.get(media_id)
            if data is None:
                raise NetrevealError(f"picture {media_id} was not loaded: analyse the study with pictures=True")
            self._tensors[media_id] = self._decode(data)
        return self._tensors[media_id]

    def save(self, array, min_size: int) -> str:
        from netreveal.report.render import to_pil

        self.count += 1
        name = f"img/{self.count:05d}.png"
        to_pil(array, min_size=min_size).save(self.stage / name)
        return name

    def image(self, media_id: int) -> str:
        picture = self.tensor(media_id)
        if picture.dim() == 2:
            picture = picture[None].expand(3, -1, -1)
        return self.save(picture, 128)

    def overlay(self, image_media: int, map_media: int) -> str:
        import torch

        from netreveal.report.render import overlay

        image = self.tensor(image_media)
        if image.dim() == 2:
            image = image[None].expand(3, -1, -1)
        cmap = self.tensor(map_media)
        cmap = cmap.mean(0) if cmap.dim() == 3 else cmap
        if tuple(cmap.shape) != tuple(image.shape[-2:]):
            cmap = torch.nn.functional.interpolate(cmap[None, None], size=tuple(image.shape[-2:]), mode="bilinear",
                                                   align_corners=False)[0, 0]
        return self.save(overlay(image, cmap), 96)


def _local(analysis: StudyAnalysis, pics: _Pictures, image_index: dict[str, int]) -> list[dict]:
    out = []
    for expl in analysis.explanations.local:
        k = image_index.get(expl.image)
        if k is None:
            continue
        info = analysis.images[k]
        layers, n_maps = [], 0
        for layer in expl.layers:
            entries = []
            for e in layer.entries:
                thumbs = [pics.overlay(info.media_id, analysis.items[i].map_media_id) for i in e.item_ids]
                n_maps += len(thumbs)
                entries.append({"clusters": e.clusters, "weight": e.weight, "labels": e.labels, "thumbs": thumbs})
            layers.append({"name": layer.layer, "entries": entries})
        out.append({"k": k, "info": info, "layers": layers, "n_maps": n_maps})
    return out


def write_label_report(analysis: StudyAnalysis, out_dir: str | os.PathLike, title: str | None = None, *,
                       force: bool = False) -> Path:
    """Write the report of ``analysis`` to ``out_dir/index.html`` (with its pictures and
    ``analysis.json``); returns the index path. An earlier label report there is replaced (once
    the new one is complete) only with ``force``; a non-empty folder that holds none is refused."""
    out = Path(out_dir)
    with staged_folder(out, LABEL_REPORT, force=force, label="labels") as stage:
        pics = _Pictures(stage, analysis)
        image_index = {info.key: k for k, info in enumerate(analysis.images)}
        shown = {e.image for e in analysis.explanations.local}
        shown |= {key for g in analysis.explanations.global_explanations for lab in g.labels for key in lab.examples}
        inputs = {k: pics.image(info.media_id) for k, info in enumerate(analysis.images) if info.key in shown}
        local = _local(analysis, pics, image_index)
        data = analysis.to_dict()
        (stage / "analysis.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        meta = {"study": analysis.study, "model": analysis.model, "params": data["params"],
                "tcav": data["tcav"]["params"] if data.get("tcav") else None, "provenance": data["provenance"]}
        env = Environment(autoescape=True)
        page = env.from_string(PAGE).render(
            title=title or f"Labels of study {analysis.study}", a=analysis, charts=global_charts(analysis),
            trends=class_trends(analysis), local=local, inputs=inputs, image_index=image_index,
            fmt=fmt, fmt_p=fmt_p, meta=json.dumps(meta, indent=2, ensure_ascii=False, default=str),
        )
        (stage / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"


__all__ = ["bars_svg", "check_out_dir", "class_trends", "fmt", "fmt_p", "global_charts", "short_layer_names",
           "write_label_report"]
