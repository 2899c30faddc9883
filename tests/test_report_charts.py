"""Report charts: round ticks on both axes, the chart fills its container's width, I-GOS's loss and
probabilities on separate axes."""

import re

import torch

from netreveal.report.plots import line_chart, nice_ticks
from netreveal.report.sections.igos import optimisation_charts


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.5, 1.0]
    assert nice_ticks(0.177, 0.36) == [0.2, 0.25, 0.3, 0.35]
    assert nice_ticks(1, 15, 6) == [5, 10, 15]
    assert nice_ticks(2.0, 2.0) == [2.0]


def _ticks(chart: str, axis: str) -> list[str]:
    edge = "top:100%" if axis == "x" else "right:100%"
    return re.findall(rf'<span style="[^"]*{edge}[^"]*">([^<]+)</span>', chart)


def test_line_chart_has_ticks_on_both_axes_and_fills_the_width():
    chart = line_chart({"loss": [0.36, 0.24, 0.2, 0.19, 0.18]}, title="loss")
    assert _ticks(chart, "y") == ["0.15", "0.20", "0.25", "0.30", "0.35", "0.40"]  # widened to round ticks
    assert _ticks(chart, "x") == ["1", "2", "3", "4", "5"]
    assert 'preserveAspectRatio="none" width="100%"' in chart and "non-scaling-stroke" in chart
    points = re.search(r'points="([^"]+)"', chart).group(1).split()
    assert points[0] == "0.0,160.0" and points[-1] == "1000.0,880.0"  # 0.36 and 0.18 on a 0.15-0.40 axis
    assert line_chart({"x": []}, title="empty") == ""


def test_igos_charts_put_loss_and_probabilities_on_separate_axes():
    extras = {"losses": torch.tensor([[3.0, 2.0, 1.5]]), "deletion_scores": torch.tensor([[0.9, 0.2, 0.1]]),
              "insertion_scores": torch.tensor([[0.1, 0.6, 0.95]])}
    html = optimisation_charts(extras, 0, "iGOS++")
    charts = html.split('<figure class="line-chart"')[1:]
    assert len(charts) == 2
    assert charts[0].count("<polyline") == 1 and "loss" in charts[0]
    assert charts[1].count("<polyline") == 2 and _ticks(charts[1], "y") == ["0.0", "0.5", "1.0"]
    assert "deleted" in charts[1] and "kept" in charts[1]
    assert "flex:1 1 100%" in html  # the charts take a full row of the section
