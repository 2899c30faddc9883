"""Structured Attention Graphs on toy models with planted sufficient patch sets: netreveal's own
variant (hard patches, its beam search and merged graph). The reference variant, the default, is
tested in test_sag_reference.py."""

import functools
import itertools
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.results import load, save
from netreveal.sag import (
    SagEdge,
    SagNode,
    SagResult,
    render_sag_svg,
    sag_expression,
)
from netreveal.sag import structured_attention_graph as sag
from netreveal.sag.search import pixel_patches
from netreveal.sag.svg import HIDDEN_GREY, node_thumbnail

GRID, SIZE = 7, 28  # 4 x 4 pixel patches
structured_attention_graph = functools.partial(sag, variant="netreveal")


class PairModel(nn.Module):
    """Class 0 fires only when both patches of some planted pair are bright (on a black image)."""

    def __init__(self, pairs):
        super().__init__()
        onehot = F.one_hot(pixel_patches((SIZE, SIZE), GRID), GRID * GRID).float()
        self.register_buffer("avg", onehot / onehot.sum(dim=(0, 1)))
        self.pairs = pairs
        self.scale = nn.Parameter(torch.tensor(20.0))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        bright = torch.einsum("bchw,hwp->bp", x, self.avg) / 3
        best = torch.stack([bright[:, i] + bright[:, j] for i, j in self.pairs], 1).max(1).values
        z = self.scale * (best - 1.5)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def patch_prob(model, image, patches):
    """Target-0 probability with only ``patches`` kept on black, computed from the definition."""
    keep = torch.zeros(SIZE, SIZE)
    for p in patches:
        r, c = divmod(p, GRID)
        keep[r * 4 : (r + 1) * 4, c * 4 : (c + 1) * 4] = 1
    with torch.no_grad():
        return model((image * keep)[None]).softmax(1)[0, 0].item()


def check_roots(model, image, result):
    needed = result.params["threshold"] * result.full_prob
    for root in result.roots:
        assert patch_prob(model, image, root) >= needed  # sufficient
        for q in root:  # 1-minimal: dropping any patch breaks it
            assert patch_prob(model, image, [p for p in root if p != q]) < needed


def salient(*patches):
    sal = torch.zeros(GRID * GRID)
    sal[list(patches)] = 1.0
    return sal.view(GRID, GRID)


def test_pixel_patches_tile_the_image_in_near_equal_patches():
    pp = pixel_patches((64, 64), 7)
    counts = torch.bincount(pp.flatten(), minlength=49)
    assert counts.min() >= 81 and counts.max() <= 100 and pp[0, 0] == 0 and pp[-1, -1] == 48
    assert pixel_patches((28, 28), 7)[5, 9].item() == 1 * 7 + 2


def test_single_planted_pair_is_the_only_root_with_default_saliency():
    model, image = PairModel([(11, 30)]), torch.ones(3, SIZE, SIZE)
    r = structured_attention_graph(model, image)
    assert r.roots == [[11, 30]] and r.target == 0 and r.shown == [0]
    check_roots(model, image, r)
    assert sag_expression(r) == "P11 & P30"
    assert r.saliency_forward_passes > 0 and r.params["saliency"] == "igos++"
    top2 = set(torch.argsort(r.saliency.flatten(), descending=True)[:2].tolist())
    assert top2 == {11, 30}  # the iGOS++ ranking found the planted patches


def test_several_pairs_all_found_and_shown_subset_is_diverse():
    pairs = [(10, 30), (11, 30), (3, 4), (40, 41), (4, 40)]
    model, image = PairModel(pairs), torch.ones(3, SIZE, SIZE)
    sal = salient(10, 11, 30, 3, 4, 40, 41)
    for max_overlap in (0, 1):
        r = structured_attention_graph(
            model, image, 0, saliency=sal, max_shown=3, max_overlap=max_overlap
        )
        assert sorted(map(tuple, r.roots)) == sorted(pairs)
        check_roots(model, image, r)
        shown = r.shown_roots
        assert 1 <= len(shown) <= 3
        for a, b in itertools.combinations(shown, 2):
            assert len(set(a) & set(b)) <= max_overlap
        if max_overlap == 0:
            # greedy in probability order (all equal here: discovery order) can still fit 3
            assert len(shown) == 3


def test_search_stops_at_max_roots_and_counts_every_forward_pass():
    pairs = [(10, 30), (11, 30), (3, 4), (40, 41)]
    model, image = PairModel(pairs), torch.ones(3, SIZE, SIZE)
    model.seen = 0
    r = structured_attention_graph(
        model, image, 0, saliency=salient(10, 11, 30, 3, 4, 40, 41), max_roots=2
    )
    assert len(r.roots) == 2 and r.stop_reason == "max_roots"
    assert r.forward_passes == model.seen - 1  # all but the full-image pass
    check_roots(model, image, r)


def test_graph_nodes_edges_and_expansion_rule():
    pairs = [(10, 30)]

    class Soft(PairModel):  # three patches, each adding evidence: partial sets keep some confidence
        def forward(self, x):
            self.seen += x.shape[0]
            bright = torch.einsum("bchw,hwp->bp", x, self.avg) / 3
            z = 4.0 * (bright[:, 10] + bright[:, 30] + bright[:, 12]) - 5.0
            return torch.stack([z, torch.zeros_like(z)], dim=1)

    model, image = Soft(pairs), torch.ones(3, SIZE, SIZE)
    r = structured_attention_graph(
        model, image, 0, saliency=salient(10, 30, 12), threshold=0.99, expand_above=0.4
    )
    assert r.roots == [[10, 12, 30]]
    check_roots(model, image, r)
    nodes = r.nodes
    assert nodes[0].root and nodes[0].level == 0 and nodes[0].patches == [10, 12, 30]
    for node in nodes:
        assert node.confidence == pytest.approx(
            patch_prob(model, image, node.patches) / r.full_prob, rel=1e-5
        )
        assert node.patches  # never the empty set
    parents = {e.parent for e in r.edges}
    for e in r.edges:
        assert nodes[e.child].patches == [p for p in nodes[e.parent].patches if p != e.removed]
        assert nodes[e.parent].confidence > 0.4
    for i, node in enumerate(nodes):
        expandable = node.confidence > 0.4 and len(node.patches) > 1
        assert (i in parents) == expandable
    # every pair below the root is a node with its own confidence; two parents can share a child
    assert {tuple(n.patches) for n in nodes if n.level == 1} == {(10, 12), (10, 30), (12, 30)}


def test_batch_size_does_not_change_the_result():
    pairs = [(10, 30), (3, 4)]
    model, image = PairModel(pairs), torch.ones(3, SIZE, SIZE)
    sal = salient(10, 30, 3, 4)
    a = structured_attention_graph(model, image, 0, saliency=sal, batch_size=1)
    b = structured_attention_graph(model, image, 0, saliency=sal, batch_size=64)
    assert a.roots == b.roots and a.forward_passes == b.forward_passes
    assert [n.patches for n in a.nodes] == [n.patches for n in b.nodes]


def test_saliency_of_any_resolution_is_averaged_to_the_grid():
    model, image = PairModel([(11, 30)]), torch.ones(3, SIZE, SIZE)
    fine = salient(11, 30).repeat_interleave(4, 0).repeat_interleave(4, 1)
    r = structured_attention_graph(model, image, 0, saliency=fine)
    assert torch.allclose(r.saliency, salient(11, 30)) and r.roots == [[11, 30]]


def test_baseline_alone_sufficient_is_reported():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([3.0, 0.0]))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 2)

    r = structured_attention_graph(Constant(), torch.rand(3, SIZE, SIZE), saliency=torch.rand(7, 7))
    assert r.roots == [[]] and r.stop_reason == "baseline_sufficient" and r.nodes == []
    assert sag_expression(r) == "TRUE"


def _result(roots, shown):
    return SagResult(
        target=1,
        full_prob=0.8,
        baseline_prob=0.01,
        grid=7,
        image_size=[28, 28],
        roots=roots,
        root_probs=[0.79] * len(roots),
        shown=shown,
        nodes=[SagNode([11, 30], 0.79, 0.9875, 0, True), SagNode([30], 0.2, 0.25, 1)],
        edges=[SagEdge(0, 1, 11)],
        saliency=torch.zeros(7, 7),
        forward_passes=10,
        saliency_forward_passes=0,
        depth=2,
        stop_reason="max_roots",
        params={"threshold": 0.9},
        provenance={},
    )


def test_sag_expression_format():
    r = _result([[30, 11], [10, 30], [3, 4, 5]], shown=[0, 2])
    assert sag_expression(r) == "P11 & P30 | P10 & P30 | P3 & P4 & P5"
    assert sag_expression(r, shown_only=True) == "P11 & P30 | P3 & P4 & P5"
    assert sag_expression(_result([], [])) == ""


def test_svg_is_well_formed_with_one_thumbnail_per_node():
    r = _result([[11, 30]], [0])
    image = torch.rand(3, SIZE, SIZE)
    svg = render_sag_svg(r, image, title="class <1>")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    images = root.findall(f".//{ns}image")
    assert len(images) == 2 and all(
        i.get("href").startswith("data:image/png;base64,") for i in images
    )
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "99%" in texts and "25%" in texts and "-P11" in texts and "class <1>" in texts
    assert len(root.findall(f".//{ns}line")) == 1


def test_thumbnail_shows_only_the_node_patches():
    thumb = torch.rand(3, 28, 28)
    out = node_thumbnail(thumb, [8], 7)  # row 1, col 1: pixels 4..7
    assert torch.equal(out[:, 4:8, 4:8], thumb[:, 4:8, 4:8])
    rest = out.clone()
    rest[:, 4:8, 4:8] = HIDDEN_GREY
    assert torch.allclose(rest, torch.full_like(rest, HIDDEN_GREY))


def test_result_round_trips(tmp_path):
    r = structured_attention_graph(
        PairModel([(11, 30)]), torch.ones(3, SIZE, SIZE), 0, saliency=salient(11, 30)
    )
    back = load(save(r, tmp_path / "sag.pt"))
    assert back.roots == r.roots and back.nodes == r.nodes and back.edges == r.edges
    assert torch.equal(back.saliency, r.saliency)


def test_bad_input_is_reported():
    model, image = PairModel([(11, 30)]), torch.ones(3, SIZE, SIZE)
    with pytest.raises(NetrevealError, match="baseline"):
        structured_attention_graph(model, image, baseline="mean")
    with pytest.raises(NetrevealError, match="one image"):
        structured_attention_graph(model, torch.ones(2, 3, SIZE, SIZE))
    with pytest.raises(NetrevealError, match="threshold"):
        structured_attention_graph(model, image, threshold=1.5)


def test_patience_stops_the_search_after_depths_without_new_roots():
    model, image = PairModel([(11, 30)]), torch.ones(3, SIZE, SIZE)
    sal = salient(11, 30)
    r = structured_attention_graph(model, image, 0, saliency=sal, patience=1)
    assert r.roots == [[11, 30]] and r.stop_reason == "patience" and r.depth == 3
    r = structured_attention_graph(model, image, 0, saliency=sal, patience=None, max_depth=6)
    assert r.roots == [[11, 30]] and r.stop_reason == "max_depth" and r.depth == 6


def test_salient_path_finds_parts_that_only_count_together():
    needed = [8, 24, 40]

    class AllOrNothing(PairModel):
        """Needs three patches at once; each alone costs a little, other patches help a little."""

        def forward(self, x):
            bright = torch.einsum("bchw,hwp->bp", x, self.avg) / 3
            core = bright[:, needed]
            decoys = bright.sum(1) - core.sum(1)
            z = 30 * (core.min(1).values - 0.5) + 0.3 * decoys - 0.3 * core.sum(1)
            return torch.stack([z, torch.zeros_like(z)], dim=1)

    model, image = AllOrNothing([]), torch.ones(3, SIZE, SIZE)
    sal = salient(*needed)
    lost = structured_attention_graph(
        model, image, 0, saliency=sal, salient_path=False, max_depth=8
    )
    assert lost.roots == [] and lost.stop_reason == "max_depth"
    found = structured_attention_graph(model, image, 0, saliency=sal, max_depth=8)
    assert found.roots == [needed]
    check_roots(model, image, found)


def test_svg_of_a_graph_without_nodes_says_so():
    r = _result([], [])
    r.nodes, r.edges = [], []
    svg = render_sag_svg(r, torch.rand(3, SIZE, SIZE))
    texts = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert any("no sufficient patch set" in t for t in texts)
