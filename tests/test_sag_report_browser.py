"""The Structured Attention Graph section of the HTML report on a phone and a laptop: the graph
scales into its box, the image beside it shows the patch grid with every patch id, no edge label
covers another label or a node, the roots left out of the graph are shown and counted."""

import pytest
import torch
from browser import SIZES, assert_fits, browser_page, needs_chromium
from sag_graphs import ROOTS, SHOWN, merged_batch

from netreveal.report import Report
from netreveal.report.sections import add_sections
from netreveal.sag.svg import FONT, LEGIBLE_SCALE

# Every graph SVG (the one with edges): its width, its box's width, and the boxes of its edge labels
# ("-P24") and of its nodes' thumbnails, in page pixels.
_GRAPHS = """() => [...document.querySelectorAll('svg')].filter(s => s.querySelector('line')).map(svg => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {width: svg.getBoundingClientRect().width, room: svg.parentElement.clientWidth,
          natural: svg.viewBox.baseVal.width, scrolls: getComputedStyle(svg.parentElement).overflowX,
          labels: [...svg.querySelectorAll('text')].filter(t => /^-P[0-9]+$/.test(t.textContent)).map(box),
          nodes: [...svg.querySelectorAll('image')].map(box)};
})"""


def _overlap(a, b, slack=0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


@pytest.fixture(scope="module")
def sag_report(tmp_path_factory):
    """A report of one image with a merged graph of 15 nodes (7 in its widest level) drawn from 3
    of its 5 roots."""
    out = tmp_path_factory.mktemp("sag-report") / "report"
    report = Report(out, title="SAG", meta={})
    image = torch.rand(3, 56, 56, generator=torch.Generator().manual_seed(0))
    report.add_image("img-1", image, torch.tensor([0.8, 0.2]), ["cart", "plane"], "cart")
    add_sections(report, ["img-1"], image[None], merged_batch(), "Structured Attention Graph")
    return report.write()


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_sag_graph_fits_its_box_with_labels_clear_of_each_other_and_of_nodes(sag_report, size, tmp_path):
    width, height = size
    with browser_page(width, height) as page:
        page.goto(sag_report.as_uri())
        assert_fits(page, f"SAG report at {width}px")
        graphs = page.evaluate(_GRAPHS)
        assert len(graphs) == 1
        graph = graphs[0]
        least = graph["natural"] * LEGIBLE_SCALE
        if least <= graph["room"]:
            assert graph["width"] <= graph["room"] + 0.5, graph  # scaled into its box, not clipped
            assert graph["width"] >= 0.9 * min(graph["room"], graph["natural"])  # not shrunk more than needed
        else:  # at its least legible size, in a box that scrolls sideways
            assert abs(graph["width"] - least) <= 1 and graph["scrolls"] in ("auto", "scroll"), graph
        scale = graph["width"] / graph["natural"]
        assert FONT * scale >= 10, graph  # the percentages and edge labels stay readable
        labels, nodes = graph["labels"], graph["nodes"]
        assert len(labels) == 23 and len(nodes) == 15
        for i, a in enumerate(labels):
            assert not any(_overlap(a, b) for b in labels[i + 1:]), ("labels overlap", a)
            assert not any(_overlap(a, n) for n in nodes), ("label on a node", a)
        page.screenshot(path=str(tmp_path / f"sag-{width}.png"), full_page=True)


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_patch_grid_with_ids_sits_beside_the_graph_and_hidden_roots_are_shown(sag_report, size):
    width, height = size
    with browser_page(width, height) as page:
        page.goto(sag_report.as_uri())
        grid = page.locator(".section svg", has=page.locator("text", has_text="P48")).first
        ids = grid.evaluate("s => [...s.querySelectorAll('text')].map(t => t.textContent)")
        assert sorted(ids) == sorted(f"P{p}" for p in range(49))
        box = grid.bounding_box()
        assert 150 <= box["width"] <= 224.5  # legible and within the phone's width
        inside = grid.evaluate("""s => { const r = s.getBoundingClientRect();
            return [...s.querySelectorAll('text')].every(t => { const b = t.getBoundingClientRect();
              return b.left >= r.left - 0.5 && b.right <= r.right + 0.5 && b.top >= r.top - 0.5
                     && b.bottom <= r.bottom + 0.5; }); }""")
        assert inside
        # the patches of the drawn roots are outlined on the grid
        drawn = {p for i in SHOWN for p in ROOTS[i]}
        assert grid.locator("rect").count() == len(drawn)
        hidden = len(ROOTS) - len(SHOWN)
        text = page.inner_text(".section")
        assert f"The {hidden} roots not in the graph" in text
        assert page.locator(".sag-others figure img").count() == hidden
