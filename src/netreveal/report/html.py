"""The HTML report: per image the input, the prediction with top-k probabilities, one section per
explanation (heatmap overlays, cluster grids, graphs...) with its metric values; a summary table.

Methods add sections through :meth:`Report.add_heatmap` or :meth:`Report.add_section` (any HTML
fragment, e.g. an inline SVG). Images are keyed by a unique name (e.g. their path relative to
the image folder). The folder is written to a staging folder beside it and moved into place, so
an interrupted run never leaves a half-written report; an existing folder is replaced only when it
holds an earlier report and ``force`` is given (:func:`netreveal.fileio.check_output_folder`).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from netreveal.fileio import EXPLANATION_REPORT, check_output_folder, finish_stage, make_stage
from netreveal.metrics.info import metric_info
from netreveal.report.legend import EVIDENCE_SCALE, colour_bar, truth_picture
from netreveal.report.render import overlay, to_pil


@dataclass
class Section:
    title: str
    html: str
    metrics: dict = field(default_factory=dict)


@dataclass
class ImageEntry:
    key: str
    anchor: str
    title: str
    src: str
    prediction: str
    topk: list[tuple[str, float]]
    true_label: str | None
    sections: list[Section] = field(default_factory=list)
    truth_src: str | None = None  # the input with everything outside its ground-truth region dimmed


class Report:
    """Collects pictures and tables, then writes ``out_dir/index.html``."""

    def __init__(self, out_dir: str | os.PathLike, title: str = "netreveal report", meta: dict | None = None,
                 *, force: bool = False, replaceable: tuple[str, ...] = ()):
        self.out_dir = Path(out_dir)
        self.title = title
        self.meta = dict(meta or {})
        self.force = force
        self.replaceable = replaceable  # kinds of output in out_dir this report completes (its unfinished run)
        check_output_folder(self.out_dir, EXPLANATION_REPORT, force=force, replaceable=replaceable)
        self._stage = make_stage(self.out_dir, "report")
        (self._stage / "img").mkdir()
        self.images: dict[str, ImageEntry] = {}
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self.notes: list[str] = []
        self.class_definitions: dict[str, list[str]] = {}
        self._count = 0

    def save_picture(self, picture: np.ndarray | torch.Tensor, stem: str, min_size: int = 192) -> str:
        """Write a PNG into the report's img/ folder; returns its path relative to index.html."""
        self._count += 1
        name = f"img/{self._count:04d}-{_slug(stem)}.png"
        to_pil(picture, min_size=min_size).save(self._stage / name)
        return name

    def staged(self, relpath: str) -> Path:
        """A path inside the report folder being written (e.g. for saved results or CSV files)."""
        path = self._stage / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_image(
        self,
        key: str,
        image: torch.Tensor,
        probs: torch.Tensor,
        class_names: list[str],
        true_label: str | None = None,
        k: int = 3,
        truth: torch.Tensor | None = None,
    ) -> ImageEntry:
        """Register an input image (3, H, W) with the model's class probabilities (C,); ``key``
        names it and must be new. ``truth`` (H, W) bool, when known, is where the image's class is
        shown (its ground truth): drawn beside the input."""
        if key in self.images:
            raise ValueError(f"image key {key!r} is used twice in one report")
        top = probs.topk(min(k, probs.numel()))
        topk = [(class_names[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]
        entry = ImageEntry(
            key=key,
            anchor=f"image-{len(self.images) + 1}-{_slug(key)}",
            title=key,
            src=self.save_picture(image, f"{key}-input"),
            prediction=topk[0][0],
            topk=topk,
            true_label=true_label,
        )
        if truth is not None:
            entry.truth_src = self.save_picture(truth_picture(image, truth), f"{key}-truth")
        self.images[key] = entry
        return entry

    def add_heatmap(
        self,
        key: str,
        title: str,
        image: torch.Tensor,
        heatmap: torch.Tensor,
        metrics: dict | None = None,
        caption: str = "",
        scale: tuple[str, str] = EVIDENCE_SCALE,
    ) -> None:
        """A heatmap (H, W) in [0, 1] overlaid on the image with its colour bar (``scale``: what 0
        and 1 mean), with metric values beside it."""
        src = self.save_picture(overlay(image, heatmap), f"{key}-{title}")
        fragment = (f'<figure><img src="{src}" alt="{html.escape(title)} heatmap">{colour_bar(scale)}'
                    f'<figcaption>{html.escape(caption)}</figcaption></figure>')
        self.add_section(key, title, fragment, metrics)

    def add_section(self, key: str, title: str, fragment: str, metrics: dict | None = None) -> None:
        """Any trusted HTML fragment (built by netreveal, user text escaped) under an image."""
        self.images[key].sections.append(Section(title=title, html=fragment, metrics=dict(metrics or {})))

    def add_table(self, title: str, header: list[str], rows: list[list], *, first: bool = False) -> None:
        """A summary table (numbers formatted); ``first`` puts it before the tables added so far."""
        table = (title, header, [[_fmt(v) for v in row] for row in rows])
        self.tables.insert(0 if first else len(self.tables), table)

    def add_note(self, text: str) -> None:
        self.notes.append(text)

    def set_class_definitions(self, definitions: dict[str, list[str]] | None) -> None:
        """What makes each class (class name -> the parts or properties that define it), shown as a
        table and beside each image's true class; None or empty: nothing is shown."""
        self.class_definitions = {str(k): [str(p) for p in v] for k, v in (definitions or {}).items()}

    def write(self) -> Path:
        """Render index.html and move the finished folder to ``out_dir``; returns the index path."""
        env = Environment(loader=PackageLoader("netreveal.report", "templates"), autoescape=True)
        env.filters["fmt"] = _fmt
        page = env.get_template("index.html.j2").render(
            title=self.title,
            meta_json=json.dumps(self.meta, indent=2, default=str),
            images=[
                {**e.__dict__, "sections": [{**s.__dict__, "html": Markup(s.html), "metrics": _metric_rows(s.metrics)}
                                            for s in e.sections]}
                for e in self.images.values()
            ],
            tables=[_table_view(*t) for t in self.tables],
            notes=self.notes,
            definitions=self.class_definitions,
        )
        try:
            (self._stage / "index.html").write_text(page, encoding="utf-8")
            (self._stage / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str), encoding="utf-8")
            finish_stage(self._stage, self.out_dir, EXPLANATION_REPORT, force=self.force,
                         replaceable=self.replaceable)
        except BaseException:
            self.discard()
            raise
        return self.out_dir / "index.html"

    def discard(self) -> None:
        """Drop the staged files (after an error)."""
        shutil.rmtree(self._stage, ignore_errors=True)


def _metric_rows(metrics: dict) -> list[dict]:
    """A section's values for the template: each with its metric's arrow and explanation when it is
    an evaluation metric (:mod:`netreveal.metrics.info`)."""
    rows = []
    for name, value in metrics.items():
        info = metric_info(name)
        rows.append({"name": info.heading if info else name, "value": value,
                     "meaning": info.sentence if info else ""})
    return rows


def _table_view(title: str, header: list[str], rows: list[list[str]]) -> dict:
    """A summary table for the template, with the meaning of each metric column it has."""
    infos = [metric_info(h) for h in header]
    return {"title": title, "header": [{"text": h, "meaning": i.sentence if i else ""} for h, i in zip(header, infos)],
            "rows": rows, "glossary": [i for i in infos if i is not None]}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in text)
    return keep.strip("-")[:60] or "x"
