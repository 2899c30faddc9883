"""The simulated crowd: labels name the part a map shows, at the configured noise rates."""

import pytest
import torch

from netreveal.data.crowd import (
    BACKGROUND_WORDS,
    IRRELEVANT_WORDS,
    REVEAL_FRACTIONS,
    CrowdConfig,
    StudyItem,
    label_item,
    partsworld_items,
    seen_part,
    simulate_crowd,
)
from netreveal.data.partsworld import PART_TYPES, synonym_lookup
from netreveal.errors import NetrevealError
from netreveal.labels.nlp import clean_label, tokenize

SIZE = 32
PARTS = ["wheel", "star", "zigzag"]
BOXES = [(2, 2, 10, 10), (20, 4, 28, 12), (8, 20, 16, 28)]  # x0, y0, x1, y1


def make_item(k, target, cls="cart", offset=0.0):
    """A map peaking on part ``target`` (``offset`` pixels right of its centre), or on empty
    background when target is None."""
    masks = torch.zeros(len(PARTS), SIZE, SIZE, dtype=torch.bool)
    for p, (x0, y0, x1, y1) in enumerate(BOXES):
        masks[p, y0:y1, x0:x1] = True
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    if target is None:
        cy, cx = 26.0, 28.0
    else:
        x0, y0, x1, y1 = BOXES[target]
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2 + offset
    m = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
    return StudyItem(f"img{k}|layer|0", f"img{k}", cls, "layer", 0, 12.5, m, masks, list(PARTS))


VOCAB = set(synonym_lookup())  # every name of every part
NAME_WORDS = {w for name in VOCAB for w in name.split()}


def test_seen_part_is_the_part_the_map_overlaps_most():
    assert [seen_part(make_item(0, t)) for t in range(3)] == [0, 1, 2]
    assert seen_part(make_item(0, None)) == -1


def test_clean_crowd_names_the_seen_part_with_synonyms():
    items = [make_item(k, k % 3) for k in range(60)]
    records = simulate_crowd(items, CrowdConfig(labels_per_item=(3, 5), seed=1))
    lookup = synonym_lookup()
    names_used = set()
    for r in records:
        truth = PARTS[int(r.image[3:]) % 3]
        text = clean_label(r.text, ["cart"])
        # every word left after cleaning is a word of one of the true part's names
        part_words = {lw for n in PART_TYPES[truth].names for lw in clean_label(n).split()}
        assert set(text.split()) <= part_words, (r.text, truth)
        assert r.correct and 1 <= r.step <= len(REVEAL_FRACTIONS)
        names_used.add(r.text.lower())
    per_item = {}
    for r in records:
        per_item[r.item_id] = per_item.get(r.item_id, 0) + 1
    assert set(per_item.values()) <= {3, 4, 5} and len(per_item) == 60
    # random synonyms: most names of each part show up
    for part in PARTS:
        shown = {n for n in PART_TYPES[part].names if any(n in t for t in names_used)}
        assert len(shown) >= len(PART_TYPES[part].names) - 1
    assert all(lookup)  # the lookup covers every synonym


def test_background_maps_get_background_words():
    records = label_item(make_item(0, None), CrowdConfig(seed=2))
    assert all(clean_label(r.text, ["cart"]) in BACKGROUND_WORDS for r in records)


def test_rates_are_honoured():
    items = [make_item(k, k % 3) for k in range(500)]
    cfg = CrowdConfig(typo_rate=0.2, irrelevant_rate=0.3, wrong_rate=0.25, filler_rate=0.0, seed=3)
    records = simulate_crowd(items, cfg)
    n = len(records)
    assert n > 2500
    tol = 3 * (0.25 / n) ** 0.5 + 0.01  # three standard errors

    wrong = [r for r in records if not r.correct]
    assert abs(len(wrong) / n - 0.25) < tol
    # a wrong guess names a part other than the one shown
    for r in wrong:
        truth = PARTS[int(r.image[3:]) % 3]
        words = set(clean_label(r.text).split())
        assert not words <= set(clean_label(" ".join(PART_TYPES[truth].names)).split())

    irrelevant = [r for r in records if set(tokenize(r.text)) & set(IRRELEVANT_WORDS)]
    # a typo may hit the irrelevant word itself, so allow for up to one in five lost
    assert 0.3 * 0.8 - tol < len(irrelevant) / n < 0.3 + tol
    known = NAME_WORDS | set(IRRELEVANT_WORDS)
    typos = [r for r in records if not set(tokenize(r.text)) <= known]
    # a few typos spell another known word ("bars" -> "bar" is not one: it is not in the list)
    assert 0.2 - 0.04 - tol < len(typos) / n < 0.2 + tol


def test_steps_follow_visibility_and_everything_is_seeded():
    sharp = [make_item(k, 0) for k in range(100)]
    off = [make_item(k, 0, offset=3.5) for k in range(100)]  # the map's top misses half the part

    def mean(rs):
        return sum(r.step for r in rs) / len(rs)

    cfg = CrowdConfig(seed=4)
    assert all(seen_part(i) == 0 for i in off)
    assert mean(simulate_crowd(off, cfg)) > mean(simulate_crowd(sharp, cfg)) + 0.5
    once = simulate_crowd(sharp, cfg)
    assert simulate_crowd(sharp, cfg) == once
    assert simulate_crowd(sharp[::-1], cfg) == [r for i in sharp[::-1] for r in once if r.item_id == i.item_id]
    assert simulate_crowd(sharp, CrowdConfig(seed=5)) != once


def test_config_is_checked():
    with pytest.raises(NetrevealError):
        simulate_crowd([make_item(0, 0)], CrowdConfig(typo_rate=1.5))
    with pytest.raises(NetrevealError):
        simulate_crowd([make_item(0, 0)], CrowdConfig(labels_per_item=(3, 2)))
    assert CrowdConfig.noisy(0.2).wrong_rate == 0.2


def test_partsworld_items_from_inv():
    items, result, samples = partsworld_items(2, layers="last:2", batch_size=2)
    expected = sum(len(layer.clusters) for img in result.images for layer in img.layers)
    assert len(items) == expected > 0
    first = items[0]
    assert first.image == f"{samples[0].class_name}/test_0000000"
    assert first.map.shape == first.part_masks.shape[1:] == (64, 64)
    cluster = result.images[0].layer(first.layer).clusters[first.cluster]
    assert first.weight == pytest.approx(cluster.weight)
    assert first.part_names == samples[0].parts
    records = simulate_crowd(items, CrowdConfig(seed=0))
    assert {r.item_id for r in records} == {i.item_id for i in items}
