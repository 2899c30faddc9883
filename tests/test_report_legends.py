"""The report's legends and words: a colour bar on heatmaps, each metric with its direction and a
plain sentence (one definition for tables and text), class definitions and ground truth beside
the input when the data gives them."""

import re

import numpy as np
import torch
from markupsafe import escape
from PIL import Image

from netreveal import pipeline
from netreveal.data.groundtruth import NoGroundTruth, class_definitions
from netreveal.data.partsworld import CLASSES
from netreveal.data.partsworld_truth import PartsWorldTruth
from netreveal.metrics.info import METRICS, metric_info
from netreveal.report import Report
from netreveal.report.legend import EVIDENCE_SCALE, colour_bar, colour_gradient, truth_picture
from netreveal.report.render import ANCHORS


def test_metric_metadata_is_the_one_definition_of_headers_and_labels():
    assert pipeline.SUMMARY_HEADER[2:6] == ["deletion AUC ↓", "insertion AUC ↑", "pointing game ↑", "energy in mask ↑"]
    assert METRICS["deletion_auc"].better == "lower" and METRICS["insertion_auc"].better == "higher"
    for key, info in METRICS.items():
        assert metric_info(key) is metric_info(info.label) is metric_info(info.heading) is info
        assert info.sentence.endswith(f"({info.better} is better)")
        assert pipeline._label(key) == info.label
    assert metric_info("explained class") is None


def test_colour_bar_uses_the_heatmap_colours_and_says_what_its_ends_mean():
    bar = colour_bar(("0: <none>", "1: most"))
    assert "0: &lt;none&gt;" in bar and "1: most" in bar
    stops = re.findall(r"rgb\((\d+),(\d+),(\d+)\)", colour_gradient())
    assert [tuple(map(int, s)) for s in stops] == [tuple(int(v) for v in a) for a in ANCHORS]


def test_truth_picture_dims_outside_the_mask_only():
    image = torch.full((3, 4, 4), 0.8)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    pic = truth_picture(image, mask, dim=0.25)
    assert (pic[:2] == 204).all() and (pic[2:] == 51).all()


def _report(tmp_path, truth=None, definitions=None):
    report = Report(tmp_path / "rep", title="t")
    image = torch.rand(3, 32, 32)
    report.set_class_definitions(definitions)
    report.add_image("img-1", image, torch.tensor([0.1, 0.7, 0.2]), ["a", "b", "c"], true_label="b", truth=truth)
    report.add_heatmap("img-1", "Grad-CAM", image, torch.rand(32, 32),
                       {"deletion AUC": 0.25, "explained class": "b"})
    report.add_table("Methods", pipeline.SUMMARY_HEADER, [["gradcam", 1, 0.2, 0.8, 1.0, 0.4, 0.1]])
    return report.write()


def test_report_explains_every_metric_beside_its_value_and_under_the_table(tmp_path):
    page = _report(tmp_path).read_text()
    info = METRICS["deletion_auc"]
    cells = f'<td class="name">{info.heading}</td><td class="num">0.250</td>'
    assert f'{cells}<td class="meaning">{escape(info.sentence)}' in page
    assert '<td class="name">explained class</td><td class="num">b</td><td></td>' in page
    glossary = page[page.index('<ul class="glossary">'):]
    for m in METRICS.values():
        assert f"<li><b>{m.heading}</b> {escape(m.sentence)}</li>" in glossary
        assert f'<th title="{escape(m.sentence)}">{m.heading}</th>' in page
    assert f"{EVIDENCE_SCALE[0]}" in page and 'class="cbar-ramp"' in page


def test_report_shows_class_definitions_and_ground_truth_when_given(tmp_path):
    truth = torch.zeros(32, 32, dtype=torch.bool)
    truth[8:16, 8:16] = True
    index = _report(tmp_path, truth=truth, definitions={"b": ["wheel", "wing"], "a": ["star"]})
    page = index.read_text()
    assert '<h2 id="classes">Classes</h2>' in page
    assert '<td>b</td><td class="parts">wheel + wing</td>' in page
    assert "= wheel + wing" in page  # beside the true class
    src = re.search(r'<img src="([^"]+)" alt="ground truth of img-1">', page).group(1)
    pic = np.asarray(Image.open(index.parent / src))
    inside, outside = pic[pic.shape[0] // 2 - 10, pic.shape[1] // 2 - 10], pic[2, 2]
    assert pic.shape[0] >= 192 and inside.mean() > 0 and outside.mean() <= 0.3 * 255


def test_report_without_ground_truth_shows_neither(tmp_path):
    page = _report(tmp_path).read_text()
    assert 'id="classes"' not in page and "ground truth of" not in page


def test_class_definitions_come_from_the_ground_truth_loader():
    assert class_definitions(PartsWorldTruth()) == {k: list(v) for k, v in CLASSES.items()}
    assert class_definitions(NoGroundTruth()) is None


def test_the_methods_table_comes_first(tmp_path):
    report = Report(tmp_path / "rep", title="t")
    report.add_table("InfoDisent: weights", ["class", "components"], [["cart", "#1"]])
    report.add_table("Methods (means over images)", pipeline.SUMMARY_HEADER, [["gradcam", 1, 0.2, 0.8, 1.0, 0.4, 0.1]],
                     first=True)
    page = report.write().read_text()
    assert page.index("Methods (means over images)") < page.index("InfoDisent: weights")
