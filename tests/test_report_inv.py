"""The report's INV section: clusters numbered as in the web app, and why a layer shows fewer
clusters than its k."""

import re

import torch

from netreveal.formatting import breakable_name, cluster_number
from netreveal.inv import LIGHT_CLUSTER_RULE, InvCluster, InvImage, InvLayer, light_cluster_floor
from netreveal.report import Report
from netreveal.report.sections.inv import inv_story_html


def _layer(name, weights, shown, k=None):
    clusters = [InvCluster(map=torch.rand(16, 16), weight=w, channels=[j]) for j, w in enumerate(weights[:shown])]
    return InvLayer(name=name, n_maps=16, n_kept=10, k=k or len(weights), silhouette=0.5, clusters=clusters,
                    combined=torch.rand(16, 16), cluster_weights=torch.tensor(weights))


def test_light_cluster_floor_is_the_pipelines_rule():
    assert light_cluster_floor(torch.tensor([40.0, 30.0, 20.0, 6.0, 4.0])) == 40.0 / 3
    assert light_cluster_floor(torch.tensor([10.0, 10.0, 10.0, 10.0])) == 5.0  # mean / 2 wins
    assert light_cluster_floor(torch.zeros(0)) == 0.0


def test_inv_section_numbers_clusters_from_one_and_says_which_were_dropped(tmp_path):
    weights = [40.0, 30.0, 20.0, 6.0, 4.0]
    assert [w >= light_cluster_floor(torch.tensor(weights)) for w in weights] == [True] * 3 + [False] * 2
    explained = InvImage(index=0, target=0, predicted=0, target_prob=0.9,
                         layers=[_layer("features.block1.conv2", weights, 3), _layer("head", [60.0, 40.0], 2)])
    report = Report(tmp_path / "r")
    html = inv_story_html(report, "img", torch.rand(3, 16, 16), explained)
    report.discard()
    assert cluster_number(0) == 1
    assert re.findall(r'alt="cluster (\d+)"', html) == ["1", "2", "3", "1", "2"]
    assert "<th>cluster 1</th><th>cluster 2</th><th>cluster 3</th></tr>" in html
    assert "2 light clusters dropped (6.0%, 4.0%)" in html  # k=5, 3 shown
    assert html.count("inv-dropped") == 1  # the layer showing all its clusters says nothing
    assert LIGHT_CLUSTER_RULE in html
    assert "1. features.<wbr>block1.<wbr>conv2" in html and breakable_name("a<b.c") == "a&lt;b.<wbr>c"
