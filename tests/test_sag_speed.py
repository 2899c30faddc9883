"""What makes SAG fast changes no result: each distinct patch set is scored once, batches and the
channels-last layout give the same graph as one set per pass, and the count of sets asked for is
the reference code's count of forward passes. Early stopping (``patience``) is an option."""

from __future__ import annotations

import pytest
import torch
from test_sag_reference import BRIDGES, GRADED, TERMS, WHITE, CellModel, Port, ranking

from netreveal.errors import NetrevealError
from netreveal.model.counting import CountingModel
from netreveal.sag import structured_attention_graph
from netreveal.sag.patches import PatchScorer


class CountingPort(Port):
    """The port, counting every patch set it asks for (the reference scores each one)."""

    asked = 0

    def prob(self, patches) -> float:
        self.asked += 1
        return super().prob(patches)


def graph_parts(r):
    """Everything a run found, bit for bit."""
    return (r.roots, r.root_probs, r.shown, [(n.patches, n.prob, n.level) for n in r.nodes],
            [(e.parent, e.child, e.removed) for e in r.edges], r.depth, r.stop_reason)


def graph_shape(r):
    """What a run found, without the probabilities."""
    return (r.roots, r.shown, [(n.patches, n.level) for n in r.nodes],
            [(e.parent, e.child, e.removed) for e in r.edges], r.depth, r.stop_reason)


def test_each_distinct_patch_set_is_scored_once_and_repeats_are_counted_as_the_reference_runs_them():
    model = CountingModel(CellModel(TERMS, GRADED, BRIDGES))
    sal, order = ranking(24, 2, 8, 30, 9, 31, 10, 37, 16, 38, 23)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal, batch_size=16)
    port = CountingPort(model.model, WHITE)
    roots = port.beam(order)
    port.tree([roots[i] for i in r.shown])
    assert [tuple(x) for x in r.roots] == roots
    assert model.counts.forward == r.forward_passes + 1  # + the full image
    assert r.forward_passes == len(port.memo) + 1  # each distinct set once (+ the baseline alone)
    # asked for: the port's sets, the baseline, and the roots' probabilities read once more
    assert r.requested_sets == port.asked + 1 + len(r.roots)
    assert r.requested_sets > r.forward_passes * 1.4  # the search asks for many sets again


def test_scorer_scores_a_repeated_set_once_within_and_across_calls():
    model = CountingModel(CellModel(TERMS))
    scorer = PatchScorer(model, WHITE, torch.zeros_like(WHITE), 0, 7, 4, insertion="soft")
    first = scorer.score([(8, 9), (9, 10), (8, 9), (3,), (9, 10)])
    again = scorer.score([(3,), (8, 9), (1,)])
    assert first[0] == first[2] and again[:2] == [first[3], first[0]]
    assert model.counts.forward == scorer.forward_passes == 4 and scorer.requests == 8
    assert model.counts.batch_sizes == [3, 1]


def test_channels_last_is_refused_when_it_changes_a_probability():
    class LayoutSensitive(torch.nn.Module):
        """A conv model whose output moves a little when fed channels-last batches."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)

        def forward(self, x):
            shift = 1e-3 if x.is_contiguous(memory_format=torch.channels_last) else 0.0
            return self.conv(x).mean(dim=(2, 3)) + shift * torch.tensor([1.0, 0.0])

    model = CountingModel(LayoutSensitive())
    scorer = PatchScorer(model, WHITE, torch.zeros_like(WHITE), 0, 7, 8)
    scorer.score([(1,), (2, 3)])  # too few to matter: not checked
    assert scorer.channels_last is None and model.counts.channels_last == 0
    scorer.score([(p,) for p in range(4, 9)])
    assert scorer.channels_last is False and model.counts.channels_last == 5  # the check only
    scorer.score([(p,) for p in range(10, 16)])
    assert model.counts.channels_last == 5 and scorer.forward_passes == 2 + 5 + 5 + 6


def test_channels_last_and_batches_change_no_result_on_the_demo_model():
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.model.adapter import load_model

    adapter = load_model("demo")
    image = partsworld_inputs(adapter, 1).images[0]
    sal = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    counted = CountingModel(adapter.model)
    fast = structured_attention_graph(counted, image, saliency=sal, beam_width=5)
    assert counted.counts.channels_last > 0
    plain = structured_attention_graph(adapter.model, image, saliency=sal, beam_width=5, channels_last=False)
    assert graph_parts(fast) == graph_parts(plain)  # the layout changes no bit
    # the check scored the first batch of at least 4 sets (depth 1's 15 candidates) twice
    assert fast.forward_passes == plain.forward_passes + 15
    slow = structured_attention_graph(adapter.model, image, saliency=sal, beam_width=5, batch_size=1,
                                      channels_last=False)
    # one set per pass: the same graph; probabilities move in the last float bits only
    assert fast.roots and graph_shape(fast) == graph_shape(slow)
    assert fast.root_probs == pytest.approx(slow.root_probs, abs=1e-6)
    assert fast.requested_sets == slow.requested_sets > 3 * fast.forward_passes


def test_patience_stops_the_reference_search_only_when_asked():
    singles = [(3,), (5,), (11, 17), (40, 41, 42, 43)]
    model = CellModel(singles)
    sal, order = ranking(3, 5, 11, 17, 19, 40, 41, 42, 43)
    full = structured_attention_graph(model, WHITE, 0, saliency=sal)
    assert [tuple(x) for x in full.roots] == Port(model, WHITE).beam(order)
    assert "patience" not in full.params and full.stop_reason != "patience"
    early = structured_attention_graph(model, WHITE, 0, saliency=sal, patience=1)
    assert early.stop_reason == "patience" and early.params["patience"] == 1
    assert early.roots == full.roots[: len(early.roots)] and len(early.roots) < len(full.roots)
    assert early.forward_passes < full.forward_passes
    with pytest.raises(NetrevealError, match="patience"):
        structured_attention_graph(model, WHITE, 0, saliency=sal, patience=-1)
