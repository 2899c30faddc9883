"""Drawing a Structured Attention Graph: edge labels placed clear of each other and of nodes, the
patch grid with its ids, an SVG that scales to its box, the undrawn roots as thumbnails."""

import xml.etree.ElementTree as ET

import pytest
import torch
from sag_graphs import ROOTS, SHOWN, merged_graph

from netreveal.report.sections.sag import other_roots, patch_grid_figure
from netreveal.sag import render_sag_svg
from netreveal.sag.edge_labels import label_size, place_labels
from netreveal.sag.patch_grid import render_patch_grid_svg
from netreveal.sag.svg import FONT, LEGIBLE_SCALE

SVG = "{http://www.w3.org/2000/svg}"


def _boxes(spots, texts, font):
    out = []
    for (x, y), text in zip(spots, texts, strict=True):
        w, h = label_size(text, font)
        out.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return out


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_converging_edges_get_labels_apart_and_off_the_nodes():
    # two edges meeting at one child, 30 px apart at their parents: the same share of the way
    # along both would put the labels on top of each other
    segments = [(100, 0, 130, 60), (160, 0, 130, 60)]
    node = (95, 60, 165, 120)
    spots = place_labels(segments, ["-P10", "-P24"], [node], 12)
    assert None not in spots
    a, b = _boxes(spots, ["-P10", "-P24"], 12)
    assert not _overlap(a, b) and not _overlap(a, node) and not _overlap(b, node)


def test_no_free_spot_is_none():
    assert place_labels([(0, 0, 0, 10)], ["-P1"], [(-50, -50, 50, 50)], 12) == [None]


def test_graph_labels_do_not_overlap_and_the_svg_scales_to_its_box():
    graph = merged_graph()
    root = ET.fromstring(render_sag_svg(graph, torch.rand(3, 56, 56)))
    width = float(root.get("width"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    style = root.get("style")
    assert "width:100%" in style and f"max-width:{width:.0f}px" in style
    assert f"min-width:{round(width * LEGIBLE_SCALE)}px" in style
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "sag-edge"]
    assert len(labels) == len(graph.edges)
    texts = [t.text for t in labels]
    spots = [(float(t.get("x")), float(t.get("y")) - FONT * 0.35) for t in labels]
    boxes = _boxes(spots, texts, FONT)
    nodes = [(float(i.get("x")), float(i.get("y")), float(i.get("x")) + float(i.get("width")),
              float(i.get("y")) + float(i.get("height"))) for i in root.iter(f"{SVG}image")]
    for k, a in enumerate(boxes):
        assert not any(_overlap(a, b) for b in boxes[k + 1:])
        assert not any(_overlap(a, n) for n in nodes)
    # node tooltips write the patch set as a set
    assert any(t.text.startswith("{P10, P11, P17}: ") for t in root.iter(f"{SVG}title"))


def test_patch_grid_has_every_id_and_outlines_the_given_patches():
    root = ET.fromstring(render_patch_grid_svg(torch.rand(1, 3, 40, 30), 7, [24, 25, 25]))
    assert [t.text for t in root.iter(f"{SVG}text")] == [f"P{p}" for p in range(49)]
    rects = list(root.iter(f"{SVG}rect"))
    assert len(rects) == 2 and rects[0].get("x") == f"{3 * 224 / 7 + 1:.1f}"  # P24: row 3, column 3
    assert root.get("viewBox") == "0 0 224 224" and "max-width:224px" in root.get("style")
    assert len(list(root.iter(f"{SVG}image"))) == 1


def test_report_shows_the_grid_and_each_root_the_graph_leaves_out():
    graph, image = merged_graph(), torch.rand(3, 56, 56)
    figure = patch_grid_figure(graph, image)
    assert "P48" in figure and "row \u00d7 7 + column" in figure
    others = other_roots(graph, image)
    hidden = len(ROOTS) - len(SHOWN)
    assert others.count("<img ") == hidden and f"The {hidden} roots not in the graph" in others
    assert 'title="{P3, P4, P5}"' in others and 'title="{P30, P31}"' in others
    graph.shown = list(range(len(ROOTS)))
    assert other_roots(graph, image) == ""


def test_layout_centres_parents_over_children_and_keeps_a_row_apart():
    from netreveal.sag.svg import _columns

    graph = merged_graph()
    column, columns = _columns(graph)
    rows: dict[int, list[float]] = {}
    for i, node in enumerate(graph.nodes):
        rows.setdefault(node.level, []).append(column[i])
    for xs in rows.values():
        xs.sort()
        assert all(b - a >= 1 for a, b in zip(xs, xs[1:]))  # one node per column at most
    assert columns <= 8 and max(column.values()) <= columns - 1
    # a root sits centred over the children it was drawn with (the first parent of each)
    first = {}
    for e in graph.edges:
        first.setdefault(e.child, e.parent)
    for parent in range(len(SHOWN)):
        kids = [c for c, p in first.items() if p == parent]
        assert column[parent] == pytest.approx(sum(column[k] for k in kids) / len(kids))
