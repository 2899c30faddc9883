"""The static HTML report of a study's label analysis (:class:`netreveal.labels.analysis.StudyAnalysis`).

Sections: global explanations (per class and layer, top labels as SVG bar charts, with a table of
scores, image counts, mean weights and example images), label trends across depth (SVG lines and
a table with least-squares slopes), the naming studio's inter-annotator agreement, TCAV of the top
label concepts (non-significant results marked), local explanations per image (each layer's
cluster maps over the image, with their best labels and weights; clusters sharing a best label
merged), and the parameters, seed and versions. ``analysis.json`` beside ``index.html`` holds the
numbers.

The page is the template ``report/templates/labels.html.j2`` (on the analysis pages' shared
layout, :mod:`netreveal.report_pages`); this module prepares what it shows: tables as rows of
cells, numbers formatted by :mod:`netreveal.formatting`, charts as inline SVG. Every string that
comes from people or the study (labels, image keys, class, layer and annotator names) is escaped:
Jinja2 autoescapes the page and the SVG charts are built with ``html.escape``. The folder is
written to a temporary sibling and moved into place.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from markupsafe import Markup

from netreveal.errors import NetrevealError
from netreveal.fileio import LABEL_REPORT, check_output_folder, staged_folder
from netreveal.formatting import cluster_number, fmt, fmt_p
from netreveal.labels.analysis import StudyAnalysis
from netreveal.report.plots import line_chart_svg
from netreveal.report_pages import Cell, Table, name, render_page

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
        tip = f"{label}: {fmt(value)}" + (f" ({note})" if note else "")
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" font-size="11" text-anchor="end">'
                     f'{html.escape(short)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{BAR_COLOUR}">'
                     f"<title>{html.escape(tip)}</title></rect>"
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" font-size="10" fill="#5b6475">'
                     f"{fmt(value)}{(' · ' + html.escape(note)) if note else ''}</text>")
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
        chart = line_chart_svg({t.word: t.scores for t in steep}, title=f"{cls}: summed label score by layer",
                               x_label="layer index, shallow → deep")
        out[cls] = {"rows": words, "chart": Markup(chart) if chart else None}
    return {"layers": short, "classes": out}


def check_out_dir(out: Path, force: bool = False) -> None:
    """NetrevealError unless ``out`` is free, an empty folder or (with ``force``) an earlier label report."""
    check_output_folder(out, LABEL_REPORT, force=force)


class _Pictures:
    """PNG files of the report: input images and cluster maps over their images."""

    def __init__(self, stage: Path, analysis: StudyAnalysis):
        from netreveal.studies.pictures import png_tensor

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


def signed(value: float) -> str:
    """A slope with its sign ("+1.10", "-0.94"), through :func:`netreveal.formatting.fmt`."""
    text = fmt(value)
    return text if text.startswith("-") or text == fmt(None) else "+" + text


def _global_sections(analysis: StudyAnalysis, inputs: dict[int, str], image_index: dict[str, int]) -> list[dict]:
    """Per class: its bar charts (one per layer) and the rows of its label table."""
    sections = []
    for cls, layers in global_charts(analysis).items():
        rows = []
        for c in layers:
            for lab in c["g"].labels:
                examples = []
                for key in lab.examples:
                    k = image_index.get(key)
                    examples.append({"key": key, "k": k, "src": inputs.get(k) if k is not None else None})
                rows.append({"layer": c["g"].layer, "word": lab.word, "score": fmt(lab.score), "maps": lab.count,
                             "weight": fmt(lab.mean_weight, 1), "examples": examples})
        charts = [{"svg": c["svg"], "layer": c["g"].layer, "n_images": c["g"].n_images} for c in layers]
        sections.append({"cls": cls, "charts": charts, "rows": rows})
    return sections


def _trend_sections(analysis: StudyAnalysis) -> list[dict]:
    """Per class: the trend chart and the table of label scores by layer with their slopes."""
    trends = class_trends(analysis)
    header = ["label", *(Cell(short, title=full) for short, full in zip(trends["layers"], analysis.layers)), "slope"]
    sections = []
    for cls, t in trends["classes"].items():
        table = Table(list(header))
        for row in t["rows"]:
            table.add([name(row.word), *(fmt(v, 1) for v in row.scores), signed(row.slope)])
        sections.append({"cls": cls, "chart": t["chart"], "table": table})
    return sections


def _agreement_tables(analysis: StudyAnalysis) -> dict[str, Table | None]:
    """The annotators' table and, with two annotators or more, the pairs' table."""
    ag = analysis.agreement
    annotators = Table(["annotator", "concepts", "named maps", "coverage"])
    for p in ag.annotators:
        annotators.add([name(p.name), str(p.concepts), str(p.named_maps), fmt(p.coverage, 3)])
    pairs = None
    if ag.report:
        pairs = Table(["annotator A", "annotator B", "maps both named", "ARI", "AMI", "name similarity", "exact names"])
        for p in ag.report.pairs:
            pairs.add([name(p.a), name(p.b), str(p.n_common), fmt(p.ari, 3), fmt(p.ami, 3),
                       fmt(p.name_similarity, 3), fmt(p.name_exact, 3)])
        r = ag.report
        pairs.add([Cell("mean over pairs", span=3), fmt(r.mean_ari, 3), fmt(r.mean_ami, 3),
                   fmt(r.mean_name_similarity, 3), ""])
    return {"annotators": annotators, "pairs": pairs}


def _tcav_table(analysis: StudyAnalysis) -> Table | None:
    """One row per tested concept, class and layer; rows and verdicts marked significant or n.s."""
    if analysis.tcav is None:
        return None
    table = Table(["class", "concept", "layer", "TCAV", "± sd", "random", "p", "", "CAV accuracy", "concept maps",
                   "class images"])
    for r in analysis.tcav.rows:
        if r.warning:
            verdict = Cell("too few class images", "ns")
        else:
            verdict = Cell(f"significant, {r.direction}", "sig") if r.significant else Cell("n.s.", "ns")
        table.add([name(r.image_class), name(r.concept), r.layer, fmt(r.score), fmt(r.score_std), fmt(r.random),
                   fmt_p(r.p_value), verdict, fmt(r.cav_accuracy), str(r.n_concept_images), str(r.n_class_images)],
                  "sig-row" if r.significant else "ns-row")
    return table


def _local(analysis: StudyAnalysis, pics: _Pictures, image_index: dict[str, int]) -> list[dict]:
    """Per labelled image: its layers, each with its (merged) cluster maps, weights and best labels."""
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
                numbers = [cluster_number(c) for c in e.clusters]
                clusters = (f"clusters {' + '.join(map(str, numbers))} merged" if len(numbers) > 1
                            else f"cluster {numbers[0]}")
                entries.append({"thumbs": list(zip(thumbs, numbers)), "caption": f"{clusters} · {fmt(e.weight, 1)}%",
                                "labels": [(lab.word, fmt(lab.score)) for lab in e.labels]})
            layers.append({"name": layer.layer, "entries": entries})
        out.append({"k": k, "key": info.key, "predicted": info.predicted_class,
                    "probability": fmt(100 * info.probability, 0), "true": info.true_class,
                    "layers": layers, "n_maps": n_maps})
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
        page = render_page(
            "labels.html.j2", title=title or f"Labels of study {analysis.study}", a=analysis,
            sources=sorted(analysis.sources.items()), glob=_global_sections(analysis, inputs, image_index),
            trends=_trend_sections(analysis), agreement=_agreement_tables(analysis), tcav=_tcav_table(analysis),
            local=local, inputs=inputs, meta_title="Parameters, seed and versions",
            meta=json.dumps(meta, indent=2, ensure_ascii=False, default=str),
        )
        (stage / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"


__all__ = ["bars_svg", "check_out_dir", "class_trends", "fmt", "fmt_p", "global_charts", "short_layer_names",
           "signed", "write_label_report"]
