"""The InfoDisent and XNN sections: zero-weight components left out, unnamed components named by
their prototypes (and the page says so)."""

import re

import torch

from netreveal.concepts.infodisent import InfoDisentExplanation
from netreveal.report import Report
from netreveal.report.sections import infodisent as section


def _explanation():
    weights = torch.zeros(2, 6)
    weights[0, 1], weights[0, 2], weights[0, 3], weights[0, 4] = 0.5, 0.3, 0.1, 0.001
    values = torch.tensor([[10.0, 5.0, 4.0, 30.0, 2.0]])
    components = torch.tensor([[1, 2, 3, 4, 0]])
    contributions = weights[0, components[0]] * values[0]
    return InfoDisentExplanation(
        method="infodisent", logits=torch.tensor([[9.0, 1.0]]), targets=torch.tensor([0]),
        target_probs=torch.tensor([0.99]), components=components, contributions=contributions[None],
        values=values, sides=torch.zeros(1, 5, dtype=torch.long), cells=torch.zeros(1, 5, 2, dtype=torch.long),
        boxes=torch.tensor([[[0, 0, 4, 4]] * 5]), heatmaps=torch.rand(1, 5, 16, 16),
        prototype_ids=torch.full((1, 5, 2), -1), sizes=torch.tensor([2]), maps=torch.rand(1, 16, 16),
        class_weights=weights, class_names=["cart", "plane"], params={}, provenance={})


def test_infodisent_leaves_out_zero_weight_components_and_lists_minor_ones(tmp_path):
    result = _explanation()
    report = Report(tmp_path / "r")
    html = section._fragment(report, "img", torch.rand(3, 16, 16), result, 0, None, None)
    report.discard()
    shown = re.findall(r"<b>component #(\d+) ", html)
    assert shown == ["1", "2"]  # the explanation's size: 2
    assert "also adding a little: #3 (W·v = 0.4" in html  # beyond the size, non-zero weight
    assert "#4" not in html and "#0" not in html  # weight 0.001 prints as 0.00; weight 0 for the class
    assert section.NAMES_NOTE in html


def test_infodisent_summary_rows_leave_out_weights_that_print_as_zero():
    rows = section.class_weight_rows(_explanation().class_weights, ["cart", "plane"])
    assert rows == [["cart", "#1\u00a00.50, #2\u00a00.30, #3\u00a00.10", 4], ["plane", "–", 0]]
    svg = section.weights_svg(_explanation().class_weights, ["cart", "plane"])
    assert re.findall(r">#(\d+)</text>", svg) == ["1", "2", "3"]


def test_negligible_means_relative_to_the_heads_largest_weight(tmp_path):
    weights = _explanation().class_weights * 0.01  # a head whose weights are all small
    rows = section.class_weight_rows(weights, ["cart", "plane"])
    assert rows[0][1] == "#1\u00a00.005, #2\u00a00.003, #3\u00a00.001"  # #4 (1e-5) is under 1 % of the largest
    small = _explanation()
    small.class_weights, small.contributions = small.class_weights * 0.01, small.contributions * 0.01
    report = Report(tmp_path / "r")
    html = section._fragment(report, "img", torch.rand(3, 16, 16), small, 0, None, None)
    report.discard()
    assert re.findall(r"<b>component #(\d+) ", html) == ["1", "2"] and "#4" not in html

