"""The HTML report renders in a real browser and all its images load."""

import pytest
import torch
from browser import browser_page, needs_chromium

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
