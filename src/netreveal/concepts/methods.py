"""InfoDisent and XNN as netreveal methods: explain a batch, one heatmap per image for scoring,
and report sections.

Which concept model is used: the file named by ``opts.head`` (InfoDisent, written by
``netreveal train-head infodisent``) or ``opts.xnn`` (XNN, ``netreveal train-head xnn``) when
given, else the shipped demo models when the adapter is the demo model; for any other model a file
is required.

Report, per image:
- InfoDisent: the components ranked by their contribution W[c, k] * v_k to the explained class,
  each as its heatmap on the image with the argmax-cell box, beside its prototypes (the training
  images where that component fires most, with their boxes and heatmaps); on the first image a
  global view of every class's weights over the components (also as a summary table);
- XNN: the x-features with their values, contributions and heatmaps, each beside its
  top-activating training images; the class-by-x-feature matrix as a summary table.

Training images are rendered again from the source a concept model records in
``info["source"]`` (:class:`TrainingImages`): parts-world settings + split + index range, or an
image folder + the file keys of its training set.
"""

from __future__ import annotations

import html
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from netreveal.concepts.infodisent import (
    InfoDisentExplanation,
    InfoDisentHead,
    explain_infodisent,
    load_head,
)
from netreveal.concepts.xnn import XNN, XNNExplanation, explain_xnn, load_xnn
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax
from netreveal.methods import Method, Options, register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.report import Report
from netreveal.report.render import overlay, to_numpy_image

SHOWN_COMPONENTS = 5  # components per image in an InfoDisent explanation
PROTOTYPE_PX = 96  # prototype / top-image thumbnails in the report
BOX_COLOUR = (0, 229, 255)


# ---------------------------------------------------------------- which concept model


@lru_cache(maxsize=8)
def _load(kind: str, path: str, mtime_ns: int) -> InfoDisentHead | XNN:
    return load_head(path) if kind == "infodisent" else load_xnn(path)


def _from_file(kind: str, path: str | os.PathLike, flag: str) -> InfoDisentHead | XNN:
    p = Path(path).expanduser()
    if not p.is_file():
        raise NetrevealError(f"{flag} file not found: {p}")
    return _load(kind, str(p.resolve()), p.stat().st_mtime_ns)


def concept_model(kind: str, adapter_name: str, path: str | os.PathLike | None):
    """The InfoDisent head (``kind="infodisent"``) or XNN (``"xnn"``) to use and where it came
    from (``"demo"`` or the file path): ``path`` when given, else the demo asset for the demo
    model; otherwise an error naming the missing flag."""
    flag = "--head" if kind == "infodisent" else "--xnn"
    if path:
        return _from_file(kind, path, flag), str(path)
    if adapter_name == "demo":
        from netreveal.concepts.demo_assets import load_demo_infodisent, load_demo_xnn

        return (load_demo_infodisent() if kind == "infodisent" else load_demo_xnn()), "demo"
    raise NetrevealError(f"{flag} is required for {kind} with a non-demo model")


def _check_layers(model: torch.nn.Module, specs, kind: str, origin: str) -> None:
    """Fail early, naming the file, when a concept model reads layers ``model`` does not have."""
    from netreveal.model.layers import named_root

    names = dict(named_root(model).named_modules())
    for spec in specs:
        if spec is not None and (spec.name == "" or spec.name not in names):
            what = f"the demo {kind}" if origin == "demo" else f"{kind} file {origin}"
            raise NetrevealError(
                f"{what} reads layer {spec.name!r}, which this model does not have "
                "(trained on another model?)"
            )


def _origin_model(kind: str, origin: str):
    """The concept model a result was made with (for its prototypes / top images)."""
    return concept_model(kind, "demo", None if origin == "demo" else origin)[0]


# ---------------------------------------------------------------- run


def run_infodisent(
    adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options
) -> InfoDisentExplanation:
    """Explain ``targets`` with the InfoDisent head; when the head's classes are not the model's
    (a head trained on another label set) its own predicted class is explained."""
    head, origin = concept_model("infodisent", adapter.name, getattr(opts, "head", None))
    _check_layers(adapter.model, [head.layer], "InfoDisent head", origin)
    head = head.to(adapter.device)
    same = list(head.class_names) == list(adapter.class_names)
    result = explain_infodisent(
        head,
        adapter.model,
        images,
        targets if same else None,
        top=SHOWN_COMPONENTS,
        batch_size=opts.batch_size,
        progress=opts.progress,
    )
    result.extras.update(
        {"head": origin, "explains": "given targets" if same else "the head's prediction"}
    )
    return result


def run_xnn(
    adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options
) -> XNNExplanation:
    """x-features of ``images`` and their contributions to ``targets`` (the model's classes)."""
    xnn, origin = concept_model("xnn", adapter.name, getattr(opts, "xnn", None))
    _check_layers(adapter.model, [xnn.layer, xnn.map_layer], "XNN", origin)
    if xnn.num_classes != len(adapter.class_names):
        raise NetrevealError(
            f"the XNN explains {xnn.num_classes} classes but the model has "
            f"{len(adapter.class_names)} (trained on another model?)"
        )
    xnn = xnn.to(adapter.device)
    result = explain_xnn(
        xnn, adapter.model, images, targets, batch_size=opts.batch_size, progress=opts.progress
    )
    result.extras.update({"xnn": origin})
    return result


def component_maps(explanation: InfoDisentExplanation | XNNExplanation) -> list[dict]:
    """Every shown component of every image as a map someone could name.

    One dict per (image, component): ``image_index``, ``component`` (InfoDisent component k or XNN
    x-feature j), ``heatmap`` (H, W) scaled to [0, 1], ``weight`` (its contribution to the
    explained class), plus ``method``, ``target`` and, for InfoDisent, ``side`` (0: the component
    fired positively, 1: negatively) and ``box`` (x0, y0, x1, y1) of its strongest cell.
    """
    out: list[dict] = []
    if isinstance(explanation, InfoDisentExplanation):
        maps = minmax(explanation.heatmaps.float())
        for i in range(len(explanation)):
            for t in range(explanation.components.shape[1]):
                out.append(
                    {
                        "method": "infodisent",
                        "image_index": i,
                        "target": int(explanation.targets[i]),
                        "component": int(explanation.components[i, t]),
                        "side": int(explanation.sides[i, t]),
                        "box": [int(v) for v in explanation.boxes[i, t]],
                        "heatmap": maps[i, t],
                        "weight": float(explanation.contributions[i, t]),
                    }
                )
        return out
    if isinstance(explanation, XNNExplanation):
        maps = minmax(explanation.heatmaps.float())
        for i in range(len(explanation)):
            for j in range(explanation.xfeatures.shape[1]):
                out.append(
                    {
                        "method": "xnn",
                        "image_index": i,
                        "target": int(explanation.targets[i]),
                        "component": j,
                        "heatmap": maps[i, j],
                        "weight": float(explanation.contributions[i, j]),
                    }
                )
        return out
    raise NetrevealError(f"no component maps in a {type(explanation).__name__}")


# ---------------------------------------------------------------- training images


class TrainingImages:
    """A concept model's training images by index, rendered or read again (and cached).

    ``source`` is the dict a concept model keeps in ``info["source"]``:
    ``{"kind": "partsworld", "settings": PartsWorld.settings(), "split", "start", "count"}`` (index i
    is parts-world image ``start + i`` of ``split``) or ``{"kind": "folder", "root", "image_size",
    "resize_ratio"}`` with ``keys[i]`` the file of index i relative to ``root``.
    """

    def __init__(self, source: dict | None, keys: list | None = None):
        self.source = source or {}
        self.keys = keys
        self._world = None
        self._cache: dict[int, tuple[torch.Tensor | None, object]] = {}

    @classmethod
    def of(cls, model: InfoDisentHead | XNN) -> TrainingImages:
        keys = (
            model.prototypes.keys
            if isinstance(model, InfoDisentHead) and model.prototypes
            else None
        )
        if isinstance(model, XNN):
            keys = model.keys
        return cls(model.info.get("source"), keys)

    def name(self, index: int) -> str:
        """How to call training image ``index`` in a caption."""
        if self.keys is not None and 0 <= index < len(self.keys):
            return str(self.keys[index])
        if self.source.get("kind") == "partsworld":
            return (
                f"{self.source.get('split', 'train')} #{int(self.source.get('start', 0)) + index}"
            )
        return f"training image #{index}"

    def get(self, index: int) -> tuple[torch.Tensor | None, object]:
        """The image (3, H, W) in [0, 1] (None when it cannot be found) and its parts-world sample
        (for the part under a box; None for other sources)."""
        if index not in self._cache:
            self._cache[index] = self._load(index)
        return self._cache[index]

    def _load(self, index: int):
        kind = self.source.get("kind")
        if kind == "partsworld":
            if self._world is None:
                from netreveal.data.partsworld import PartsWorld

                s = self.source["settings"]
                self._world = PartsWorld(
                    size=s["size"],
                    seed=s["seed"],
                    split=self.source.get("split", "train"),
                    max_distractors=s["max_distractors"],
                    scale=tuple(s["scale"]),
                    clutter=s["clutter"],
                    classes=s["classes"],
                )
            sample = self._world.sample(int(self.source.get("start", 0)) + index)
            return sample.image, sample
        if kind == "folder" and self.keys is not None and 0 <= index < len(self.keys):
            path = Path(self.source["root"]) / str(self.keys[index])
            if not path.is_file():
                return None, None
            from torchvision.transforms import functional as TF

            from netreveal.data.images import load_image

            size = [int(v) for v in self.source["image_size"]]
            image = load_image(path)
            short = round(min(size) / float(self.source.get("resize_ratio", 1.0)))
            image = TF.center_crop(TF.resize(image, short, antialias=True), size)
            return TF.to_tensor(image), None
        return None, None


# ---------------------------------------------------------------- pictures


def draw_box(picture: np.ndarray, box, colour=BOX_COLOUR) -> np.ndarray:
    """A rectangle outline (x0, y0, x1, y1; exclusive ends) drawn on an (H, W, 3) uint8 picture,
    about 1/64 of the image side thick."""
    out = picture.copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
    x1, y1 = max(x0 + 1, min(x1, w)), max(y0 + 1, min(y1, h))
    t = max(1, min(h, w) // 64)
    out[y0 : min(y0 + t, y1), x0:x1] = colour
    out[max(y1 - t, y0) : y1, x0:x1] = colour
    out[y0:y1, x0 : min(x0 + t, x1)] = colour
    out[y0:y1, max(x1 - t, x0) : x1] = colour
    return out


def _figure(src: str, alt: str, caption: str, width: int = 192) -> str:
    return (
        f'<figure style="width:{width}px"><img src="{src}" alt="{html.escape(alt)}" '
        f'style="width:{width}px"><figcaption>{caption}</figcaption></figure>'
    )


def _missing(width: int, caption: str) -> str:
    return (
        f'<figure style="width:{width}px"><div style="width:{width}px;height:{width}px;'
        f'background:#eef0f4;border-radius:4px"></div><figcaption>{caption}</figcaption></figure>'
    )


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class _Thumbs:
    """Thumbnails of training images, each written once per report."""

    def __init__(self, report: Report, images: TrainingImages, stem: str):
        self.report, self.images, self.stem = report, images, stem
        self.srcs: dict[tuple, str | None] = {}

    def picture(
        self,
        key: tuple,
        index: int,
        heatmap: torch.Tensor | None = None,
        box=None,
    ) -> tuple[str | None, object]:
        image, sample = self.images.get(index)
        if key not in self.srcs:
            if image is None:
                self.srcs[key] = None
            else:
                pic = (
                    overlay(image, minmax(heatmap.float()[None])[0], alpha=0.45)
                    if heatmap is not None
                    else to_numpy_image(image)
                )
                if box is not None:
                    pic = draw_box(pic, box)
                pic = _shrink(pic, 2 * PROTOTYPE_PX)
                self.srcs[key] = self.report.save_picture(
                    pic, f"{self.stem}-{'-'.join(map(str, key))}", min_size=PROTOTYPE_PX
                )
        return self.srcs[key], sample


def _shrink(picture: np.ndarray, side: int) -> np.ndarray:
    """A picture whose short side exceeds ``side`` scaled down to it (thumbnails stay small)."""
    h, w = picture.shape[:2]
    if min(h, w) <= side:
        return picture
    from PIL import Image

    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(picture).resize(size, Image.BILINEAR))


def _part_under(sample, box) -> str | None:
    """The parts-world part covering most of ``box`` on a training sample (None: no sample)."""
    if sample is None:
        return None
    from netreveal.concepts.prototypes import box_part

    return box_part(list(box), sample.masks, sample.parts)


# ---------------------------------------------------------------- InfoDisent report


def weights_svg(weights: torch.Tensor, class_names: list[str], per_class: int = 3) -> str:
    """Inline SVG: every class (row) against the components its ``per_class`` largest weights use
    (columns, grouped by the class that weighs them most); cell darkness = weight."""
    w = weights.detach().float().cpu().clamp_min(0)
    c, d = w.shape
    picked = w.topk(min(per_class, d), dim=1).indices.unique().tolist()
    picked = [k for k in picked if float(w[:, k].max()) > 0]
    if not picked:
        return ""
    picked.sort(key=lambda k: (int(w[:, k].argmax()), -float(w[:, k].max())))
    top = float(w[:, picked].max())
    cell_w, cell_h, left, head = 30, 22, 10 + 8 * max(len(str(n)) for n in class_names), 30
    width, height = left + cell_w * len(picked) + 4, head + cell_h * c + 4
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'class="chart"><title>class weights over components</title>'
        )
    ]
    for j, k in enumerate(picked):
        x = left + j * cell_w + cell_w / 2
        parts.append(
            f'<text x="{x:.1f}" y="{head - 8}" font-size="11" text-anchor="middle">#{k}</text>'
        )
    for r, name in enumerate(class_names):
        y = head + r * cell_h
        parts.append(
            f'<text x="{left - 6}" y="{y + cell_h * 0.68:.1f}" font-size="13" text-anchor="end">'
            f"{html.escape(str(name))}</text>"
        )
        for j, k in enumerate(picked):
            value = float(w[r, k])
            shade = value / top if top > 0 else 0.0
            parts.append(
                f'<rect x="{left + j * cell_w}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="#7a2c8f" fill-opacity="{0.05 + 0.95 * shade:.3f}" stroke="#dde2ea">'
                f"<title>{html.escape(str(name))} · component #{k}: {value:.3f}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def class_weight_rows(
    weights: torch.Tensor, class_names: list[str], per_class: int = 5
) -> list[list]:
    """Summary-table rows: class, its strongest components with weights, its non-zero count."""
    w = weights.detach().float().cpu()
    rows = []
    for c, name in enumerate(class_names):
        vals, idx = w[c].topk(min(per_class, w.shape[1]))
        listed = ", ".join(f"#{int(k)} {float(v):.2f}" for k, v in zip(idx, vals) if float(v) > 0)
        rows.append([str(name), listed or "–", int((w[c] > 0).sum())])
    return rows


def report_infodisent(
    report: Report,
    keys: list[str],
    images: torch.Tensor,
    result: InfoDisentExplanation,
    opts: Options,
) -> None:
    """Per image the ranked components beside their prototypes; a global view on the first image."""
    head = _origin_model("infodisent", result.extras.get("head", "demo"))
    protos = head.prototypes
    thumbs = _Thumbs(report, TrainingImages.of(head), "proto")
    names = list(result.class_names)
    report.add_table(
        "InfoDisent: each class's strongest components",
        ["class", "components (weight)", "non-zero weights"],
        class_weight_rows(result.class_weights, names),
    )
    for i, key in enumerate(keys):
        if i == 0:
            svg = weights_svg(result.class_weights, names)
            report.add_section(
                key,
                "InfoDisent: what each class weighs (all images)",
                f'<div><div class="metrics">weights W[c, k] ≥ 0 of each class over the components '
                f"its three largest weights use (darkest: {float(result.class_weights.max()):.2f}; "
                f"hover for values); a class logit is the sum of W[c, k]·v_k over components</div>"
                f'<div class="scroll">{svg}</div></div>',
            )
        report.add_section(
            key,
            "InfoDisent",
            _infodisent_fragment(report, key, images[i], result, i, protos, thumbs),
            _infodisent_metrics(result, i),
        )


def _infodisent_metrics(result: InfoDisentExplanation, i: int) -> dict:
    names = result.class_names
    target = int(result.targets[i])
    pred = int(result.logits[i].argmax())
    out = {
        "explained class": names[target],
        "head predicts": names[pred],
        "head p(class)": float(result.target_probs[i]),
        "explanation size": int(result.sizes[i]),
    }
    if result.backbone_logits is not None and result.backbone_logits.shape[1] == len(names):
        out["agrees with model"] = (
            "yes" if int(result.backbone_logits[i].argmax()) == pred else "no"
        )
    return out


def _infodisent_fragment(report, key, image, result, i, protos, thumbs) -> str:
    target = int(result.targets[i])
    logit = float(result.logits[i, target])
    rows = []
    for t in range(result.components.shape[1]):
        k = int(result.components[i, t])
        side = int(result.sides[i, t])
        contrib = float(result.contributions[i, t])
        value = float(result.values[i, t])
        if contrib <= 0 and t > 0:
            break
        pic = draw_box(
            overlay(image, minmax(result.heatmaps[i, t].float()[None])[0]), result.boxes[i, t]
        )
        src = report.save_picture(pic, f"{key}-infodisent-c{k}")
        sign = "+" if side == 0 else "−"
        caption = (
            f"<b>component #{k} {sign}</b><br>W·v = {_fmt(contrib)} "
            f"({100 * contrib / logit:.0f}% of the logit {_fmt(logit)})<br>v = {_fmt(value)}"
            if abs(logit) > 1e-12
            else f"<b>component #{k} {sign}</b><br>W·v = {_fmt(contrib)}<br>v = {_fmt(value)}"
        )
        cells = [_figure(src, f"component {k} on the image", caption)]
        if protos is not None:
            for rank in range(protos.m):
                index = int(protos.indices[side, k, rank])
                if index < 0:
                    continue
                box = protos.boxes[side, k, rank].tolist()
                src_p, sample = thumbs.picture(
                    (k, side, rank), index, protos.heatmap(k, rank, side), box
                )
                part = _part_under(sample, box)
                label = html.escape(thumbs.images.name(index)) + (
                    f"<br>{html.escape(part)}" if part else ""
                )
                cells.append(
                    _figure(src_p, f"prototype {rank + 1} of component {k}", label, PROTOTYPE_PX)
                    if src_p
                    else _missing(PROTOTYPE_PX, label)
                )
        rows.append(f'<div class="row" style="margin:6px 0">{"".join(cells)}</div>')
    lead = (
        f'<div class="metrics">components ranked by their contribution W[c, k]·v_k to '
        f"<b>{html.escape(result.class_names[target])}</b>; box: strongest cell; right: prototypes "
        f"(training images where the component fires most, {'its ' if protos else ''}box and map)</div>"
    )
    return f"<div>{lead}{''.join(rows)}</div>"


# ---------------------------------------------------------------- XNN report


def report_xnn(
    report: Report, keys: list[str], images: torch.Tensor, result: XNNExplanation, opts: Options
) -> None:
    """Per image every x-feature (value, contribution, heatmap) beside its top training images."""
    xnn = _origin_model("xnn", result.extras.get("xnn", "demo"))
    names = list(result.class_names)
    matrix = xnn.concept_matrix().detach().cpu()
    report.add_table(
        "XNN: logit change per unit of each x-feature (M = W·Bᵀ)",
        ["class", *[f"x{j}" for j in range(matrix.shape[1])]],
        [[name, *[float(v) for v in matrix[c]]] for c, name in enumerate(names)],
    )
    thumbs = _Thumbs(report, TrainingImages.of(xnn), "xnn-top")
    for i, key in enumerate(keys):
        target = int(result.targets[i])
        order = torch.sort(result.contributions[i], descending=True, stable=True).indices.tolist()
        rows, idle = [], []
        for j in order:
            x = float(result.xfeatures[i, j])
            if x <= 0:
                idle.append(f"x{j}")
                continue
            contrib = float(result.contributions[i, j])
            src = report.save_picture(
                overlay(images[i], minmax(result.heatmaps[i, j].float()[None])[0]),
                f"{key}-xnn-x{j}",
            )
            cells = [
                _figure(
                    src,
                    f"x-feature {j} heatmap",
                    f"<b>x-feature x{j}</b><br>x = {_fmt(x)} · contribution {_fmt(contrib)}",
                )
            ]
            if result.top_images is not None:
                scores = xnn.top_scores
                for rank, index in enumerate(result.top_images[j].tolist()):
                    if index < 0:
                        continue
                    src_t, _ = thumbs.picture((j, rank), index)
                    label = html.escape(thumbs.images.name(index))
                    if scores is not None:
                        label += f"<br>x = {_fmt(float(scores[j, rank]))}"
                    cells.append(
                        _figure(
                            src_t, f"top image {rank + 1} of x-feature {j}", label, PROTOTYPE_PX
                        )
                        if src_t
                        else _missing(PROTOTYPE_PX, label)
                    )
            rows.append(f'<div class="row" style="margin:6px 0">{"".join(cells)}</div>')
        none = ""
        if not bool((result.contributions[i] > 0).any()):
            none = (
                f"<br>no x-feature adds to <b>{html.escape(names[target])}</b> here: the "
                "reconstruction reaches it through the absence of the others (its constant term)"
            )
        lead = (
            f'<div class="metrics">x-features ranked by their contribution x_j·M[c, j] to '
            f"<b>{html.escape(names[target])}</b>; right: the training images where each is largest"
            + (f"; inactive here: {', '.join(idle)}" if idle else "")
            + none
            + "</div>"
        )
        metrics = {
            "explained class": names[target],
            "reconstruction agrees": "yes" if bool(result.agreement[i]) else "no",
            "active x-features": len(order) - len(idle),
            "reconstructed p(class)": float(result.reconstructed[i].softmax(0)[target]),
        }
        report.add_section(key, "XNN", f"<div>{lead}{''.join(rows)}</div>", metrics)


# ---------------------------------------------------------------- registration

def _check(kind: str):
    def check(adapter: ModelAdapter, example: torch.Tensor, opts: Options) -> None:
        concept_model(kind, adapter.name, getattr(opts, "head" if kind == "infodisent" else "xnn", None))

    return check


METHOD_INFODISENT = register_method(
    Method("infodisent", "InfoDisent", run_infodisent, lambda r: r.maps, report_infodisent, _check("infodisent"))
)
METHOD_XNN = register_method(Method("xnn", "XNN", run_xnn, lambda r: r.maps, report_xnn, _check("xnn")))

__all__: list[str] = [
    "METHOD_INFODISENT",
    "METHOD_XNN",
    "TrainingImages",
    "class_weight_rows",
    "component_maps",
    "concept_model",
    "draw_box",
    "report_infodisent",
    "report_xnn",
    "run_infodisent",
    "run_xnn",
    "weights_svg",
]
