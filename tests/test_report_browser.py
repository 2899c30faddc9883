"""The HTML report renders in a real browser and all its images load; the demo report (every kind
of section) is readable on a phone and a laptop: nothing wider than the screen, no column squeezed
below its header's words, the INV grid scrolling in its own box, full-width I-GOS charts."""

import pytest
import torch
from browser import SIZES, assert_fits, assert_not_squeezed, browser_page, needs_chromium

from netreveal.report import Report


def _report(tmp_path):
    report = Report(tmp_path / "rep", title="test <report>", meta={"seed": 1})
    image = torch.rand(3, 32, 32)
    report.add_image("img-1", image, torch.tensor([0.1, 0.7, 0.2]), ["a", "b", "<c>"], true_label="b")
    report.add_heatmap("img-1", "Grad-CAM", image, torch.rand(32, 32), {"deletion AUC": 0.25})
    report.add_table("Summary", ["method", "value"], [["gradcam", 0.5]])
    return report.write()


def test_report_is_self_contained_and_escaped(tmp_path):
    index = _report(tmp_path)
    page = index.read_text()
    assert "test &lt;report&gt;" in page and "<c>" not in page
    assert "0.250" in page and (index.parent / "meta.json").is_file()


@needs_chromium
@pytest.mark.browser
def test_report_images_load_in_chromium(tmp_path):
    index = _report(tmp_path)
    with browser_page() as page:
        page.goto(index.as_uri())
        assert page.title() == "test <report>"
        sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        assert len(sizes) == 2
        assert all(done and width > 0 for done, width in sizes)
        assert "predicted: b" in page.inner_text("section.image")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """The demo report of one parts-world image with Grad-CAM, INV, iGOS++ (few iterations),
    InfoDisent and XNN, as ``netreveal demo`` writes it."""
    from netreveal import pipeline
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.methods import METHODS, MethodOptions
    from netreveal.model.adapter import load_model

    adapter = load_model("demo")
    opts = {"progress": False, "batch_size": 8, "igos_iterations": 3, "igos_steps": 2}
    runs = [METHODS[name].configure(opts) for name in ("gradcam", "inv", "igos++", "infodisent", "xnn")]
    out = tmp_path_factory.mktemp("demo-report") / "report"
    return pipeline.explain(adapter, partsworld_inputs(adapter, 1), runs, MethodOptions.from_values(opts), out,
                            steps=5, title="netreveal demo: parts world")


# The Methods table: whether its box scrolls sideways, and each header cell's text with the number of
# lines it takes.
_METHODS_HEADERS = """() => {
  const title = [...document.querySelectorAll('h3')].find(h => h.textContent.startsWith('Methods'));
  const table = title.nextElementSibling.querySelector('table');
  const box = getComputedStyle(table.parentElement).overflowX;
  const cells = [...table.rows[0].cells].map(th => {
    const style = getComputedStyle(th);
    const text = th.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    return [th.innerText, Math.round(text / parseFloat(style.lineHeight))];
  });
  return {scrolls: box === 'auto' || box === 'scroll', cells};
}"""


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_demo_report_fits_phone_and_laptop(demo_report, size, tmp_path):
    width, height = size
    with browser_page(width, height) as page:
        page.goto(demo_report.as_uri())
        assert_fits(page, f"demo report at {width}px")
        assert_not_squeezed(page, f"demo report at {width}px")
        # the Methods table's headers each read on one line; the table scrolls in its own box
        heads = page.evaluate(_METHODS_HEADERS)
        assert heads["scrolls"] and heads["cells"], heads
        assert all(lines == 1 for _, lines in heads["cells"]), heads
        # every heatmap section has its colour bar; the ground truth sits beside the input
        assert page.locator(".cbar").count() >= 5 and page.locator('img[alt^="ground truth of"]').count() == 1
        # the INV grid keeps its pictures at full size and scrolls in its own box on a phone
        grid = page.locator("table.inv-story").first
        assert min(page.eval_on_selector_all("img.inv", "els => els.map(e => e.clientWidth)")) >= 80
        box = grid.evaluate("t => [getComputedStyle(t.parentElement).overflowX, t.parentElement.scrollWidth, "
                            "t.parentElement.clientWidth]")
        assert box[0] == "auto" and (box[1] > box[2] or width > 800)
        names = page.eval_on_selector_all("th.inv-layer", "els => els.map(e => e.clientWidth)")
        assert min(names) >= 120  # layer names wrap at their dots, not one letter per line
        # the I-GOS charts take the section's width (about half each side by side on a laptop)
        section = page.locator(".section", has=page.locator(".line-chart")).first
        full = section.evaluate("s => s.clientWidth")
        charts = page.eval_on_selector_all(".line-chart", "els => els.map(e => e.getBoundingClientRect().width)")
        assert len(charts) == 2 and min(charts) >= (0.9 * full if width < 800 else 0.4 * full)
        page.screenshot(path=str(tmp_path / f"demo-{width}.png"), full_page=True)
