"""The INV "feature-extraction story" of one image: layers from shallow to deep, each row the
layer's combined map followed by its cluster maps with their weights. Clusters are numbered as
everywhere else (:func:`netreveal.inv.cluster_number`: from 1, heaviest first); a layer showing
fewer clusters than its k says which light clusters were dropped and by which rule."""

from __future__ import annotations

import html

import torch

from netreveal.formatting import breakable_name, cluster_number
from netreveal.inv.result import InvResult
from netreveal.inv.weights import LIGHT_CLUSTER_RULE
from netreveal.report.html import Report
from netreveal.report.legend import CLUSTER_SCALE, colour_bar
from netreveal.report.render import overlay
from netreveal.report.sections import renders

THUMB_PX = 112


def inv_story_html(report: Report, key: str, image: torch.Tensor, explained, taps: dict | None = None) -> str:
    """HTML table for one :class:`netreveal.inv.InvImage` (pictures are written into the report);
    ``taps`` says what each layer's tapped tensor is (``InvResult.params["taps"]``)."""
    rows = []
    widest = max((len(layer.clusters) for layer in explained.layers), default=0)
    for depth, layer in enumerate(explained.layers, start=1):
        cells = [
            (f'<th class="inv-layer">{depth}. {breakable_name(layer.name)}<br>{_tap_note(taps, layer.name)}'
             f'<span class="metrics">{layer.n_kept}/{layer.n_maps} maps kept · k={layer.k}</span>'
             f"{_dropped_note(layer)}</th>")
        ]
        if layer.empty:
            cells.append(f'<td colspan="{widest + 1}" class="metrics">no map with a positive guided gradient</td>')
        else:
            src = report.save_picture(overlay(image, layer.combined.float()), f"{key}-inv-{depth}-all",
                                      min_size=THUMB_PX)
            cells.append(f'<td><img class="inv" src="{src}" alt="combined map of {html.escape(layer.name)}">'
                         f'<div class="metrics">combined</div></td>')
            for c, cluster in enumerate(layer.clusters):
                src = report.save_picture(overlay(image, cluster.map.float()), f"{key}-inv-{depth}-c{c}",
                                          min_size=THUMB_PX)
                title = f"{len(cluster.channels)} channels: " + ", ".join(map(str, cluster.channels[:40]))
                number = cluster_number(c)
                cells.append(f'<td><img class="inv" src="{src}" alt="cluster {number}" title="{html.escape(title)}">'
                             f'<div class="metrics">cluster {number}<br><b>{cluster.weight:.1f}%</b> · '
                             f'{len(cluster.channels)} maps</div></td>')
            cells.extend("<td></td>" for _ in range(widest - len(layer.clusters)))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    clusters = "".join(f"<th>cluster {cluster_number(i)}</th>" for i in range(widest))
    header = f"<tr><th>layer</th><th>combined</th>{clusters}</tr>"
    lead = ('<div class="metrics">Clusters are numbered from 1, heaviest first (as in the naming studio and '
            "the explanation pages); weight: the cluster's share of the layer's evidence. A layer shows fewer "
            f"clusters than its k when light clusters are dropped ({LIGHT_CLUSTER_RULE}).</div>")
    return (f'<div>{lead}{colour_bar(CLUSTER_SCALE, width=288)}'
            f'<div class="scroll"><table class="inv-story">{header}{"".join(rows)}</table></div></div>')


def _dropped_note(layer) -> str:
    """Why the layer shows fewer clusters than its k ("" when it shows them all)."""
    missing = layer.k - len(layer.clusters)
    if layer.empty or missing <= 0:
        return ""
    weights = layer.dropped_weights
    listed = f" ({', '.join(f'{w:.1f}%' for w in weights)})" if len(weights) == missing else ""
    return (f'<br><span class="metrics inv-dropped">{missing} light cluster{"s" if missing > 1 else ""} '
            f"dropped{listed}</span>")


def _tap_note(taps: dict | None, name: str) -> str:
    text = (taps or {}).get(name)
    return f'<span class="metrics inv-tap">{html.escape(text)}</span><br>' if text else ""


@renders(InvResult)
def inv_sections(report: Report, keys: list[str], images: torch.Tensor, result: InvResult, title: str) -> None:
    for i, key in enumerate(keys):
        report.add_section(key, "INV: layer-wise feature maps (shallow to deep)",
                           inv_story_html(report, key, images[i], result.images[i],
                                          result.params.get("taps")))
