"""Inter-annotator agreement on hand-built groupings."""

import json
import math
import random

import pytest
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.agreement import (
    annotator_agreement,
    coverage,
    match_concepts,
    pair_agreement,
)

ITEMS = [f"map{i:03d}" for i in range(400)]
CONCEPTS = ["wheel", "wing", "star", "dots"]


def grouping(seed, names=CONCEPTS):
    rng = random.Random(seed)
    return {i: rng.choice(names) for i in ITEMS}


def test_identical_groupings_agree_fully_even_with_other_names():
    a = grouping(0)
    renamed = {i: {"wheel": "tyre", "wing": "fin", "star": "star", "dots": "dots"}[c] for i, c in a.items()}
    p = pair_agreement(a, renamed, ("a", "b"))
    assert p.n_common == len(ITEMS)
    assert p.ari == pytest.approx(1.0) and p.ami == pytest.approx(1.0)
    # the matching pairs every concept with its renamed self; two of four names are equal
    assert {(m.concept_a, m.concept_b) for m in p.matches} == {
        ("wheel", "tyre"), ("wing", "fin"), ("star", "star"), ("dots", "dots")
    }
    shared = sum(1 for c in a.values() if c in ("star", "dots")) / len(a)
    assert p.name_exact == pytest.approx(shared) and p.name_similarity == pytest.approx(shared)


def test_independent_groupings_agree_at_chance():
    p = pair_agreement(grouping(1), grouping(2, ["x", "y", "z", "w"]))
    assert abs(p.ari) < 0.02 and abs(p.ami) < 0.02
    assert p.name_exact == 0.0


def test_name_similarity_uses_the_embedding():
    vecs = {"wheel": [1.0, 0.0], "tyre": [0.6, 0.8], "wing": [0.0, 1.0]}

    def embed(texts):
        return torch.tensor([vecs[t] for t in texts])

    a = {"m1": "wheel", "m2": "wheel", "m3": "wing", "m4": "wing"}
    b = {"m1": "tyres", "m2": "tyres", "m3": "wing", "m4": "wing"}  # cleaned: "tyre"
    p = pair_agreement(a, b, embed=embed)
    # matched: (wheel, tyres) over 2 maps at cos 0.6, (wing, wing) over 2 maps at 1
    assert p.name_similarity == pytest.approx((2 * 0.6 + 2 * 1.0) / 4)
    assert p.name_exact == pytest.approx(0.5)


def test_match_concepts_maximises_total_overlap():
    # overlaps: p-x 3, p-y 2, q-x 2. Greedy takes p-x (3) and leaves q nothing; the best total
    # is p-y 2 + q-x 2 = 4
    a = ["p", "p", "p", "p", "p", "q", "q"]
    b = ["x", "x", "x", "y", "y", "x", "x"]
    assert sorted(match_concepts(a, b)) == [("p", "y", 2), ("q", "x", 2)]


def test_coverage_and_seen_maps():
    a = {"m1": "wheel", "m2": None, "m3": "star", "m4": "star"}
    b = {"m1": "tyre", "m2": "fin", "m3": "sparkle"}
    assert coverage(a) == pytest.approx(0.75)
    assert coverage(b, seen=["m1", "m2", "m3", "m4", "m5"]) == pytest.approx(0.6)
    report = annotator_agreement({"a": a, "b": b}, seen={"b": ["m1", "m2", "m3", "m4", "m5"]})
    (p,) = report.pairs
    assert p.n_common == 2  # m1 and m3: seen by both and named by both (m2 unnamed by a)
    assert report.coverage == {"a": pytest.approx(0.75), "b": pytest.approx(0.6)}
    assert report.mean_coverage == pytest.approx(0.675)


def test_report_means_over_pairs_and_json():
    a = grouping(3)
    groupings = {"a": a, "b": dict(a), "c": grouping(4, ["x", "y", "z", "w"])}
    report = annotator_agreement(groupings)
    assert [(p.a, p.b) for p in report.pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert report.mean_ari == pytest.approx(sum(p.ari for p in report.pairs) / 3)
    assert report.pairs[0].ari == pytest.approx(1.0)
    small = annotator_agreement({"a": {"m1": "x"}, "b": {"m1": "y"}})
    assert math.isnan(small.pairs[0].ari)  # one common map: undefined
    assert json.loads(json.dumps(small.to_dict()))["mean_ari"] is None
    with pytest.raises(NetrevealError):
        annotator_agreement({"a": a})
