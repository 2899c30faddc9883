"""SAG's reference variants against a port of the reference code's rules written in this file.

The port scores one patch set at a time, with a soft patch mask computed here from the definition
of bilinear upsampling (align_corners=True), and follows the reference's loops literally: beam
search that keeps filling the beam until it holds more than ``beam_width`` states, raster-order
pruning, the depth-first search for the largest group of roots sharing at most one patch, the 2020
release's combinations and least-overlap order, and the deletion tree that expands a node when its
printed percentage exceeds 40 and removes only its first 3 patches. The models are hand-made: they
read the image at the cell centres (and halfway between cells, where soft and hard patches differ),
so the sufficient sets are known.

On a 25 px image and a 7x7 grid the cell centres are 4 pixels apart and every bilinear weight is a
multiple of 1/16: the port's masks and netreveal's are bit-identical and no tie depends on rounding.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from cli_checks import fails_with_one_line
from torch import nn

from netreveal.cli import main
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS
from netreveal.methods.sag import sag_arguments
from netreveal.report.sections.sag import roots_summary
from netreveal.sag import root_sets_text, structured_attention_graph
from netreveal.sag.graph import build_tree, printed_percent
from netreveal.sag.patches import PatchScorer, patch_masks
from netreveal.sag.reference import disparity_order, largest_compatible, prune_raster
from netreveal.sag.search import prune_to_minimal

GRID, SIZE = 7, 25
WHITE = torch.ones(3, SIZE, SIZE)


# ------------------------------------------------------------------ soft masks from the definition


def bilinear(cells: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear upsampling of a (g, g) grid with align_corners=True, written out: output pixel y
    samples the grid at y * (g - 1) / (out_h - 1) and mixes the two nearest rows (columns alike)."""
    g_h, g_w = cells.shape
    out = np.zeros((out_h, out_w))
    for y in range(out_h):
        sy = y * (g_h - 1) / (out_h - 1) if out_h > 1 else 0.0
        y0 = int(math.floor(sy))
        y1, wy = min(y0 + 1, g_h - 1), sy - y0
        for x in range(out_w):
            sx = x * (g_w - 1) / (out_w - 1) if out_w > 1 else 0.0
            x0 = int(math.floor(sx))
            x1, wx = min(x0 + 1, g_w - 1), sx - x0
            top = (1 - wx) * cells[y0, x0] + wx * cells[y0, x1]
            bottom = (1 - wx) * cells[y1, x0] + wx * cells[y1, x1]
            out[y, x] = (1 - wy) * top + wy * bottom
    return out


def grid_of(patches, grid=GRID) -> np.ndarray:
    cells = np.zeros((grid, grid))
    for p in patches:
        cells[p // grid, p % grid] = 1.0
    return cells


def test_soft_mask_is_the_bilinear_upsampling_of_the_0_1_grid():
    rng = np.random.default_rng(0)
    for size in [(SIZE, SIZE), (64, 64), (30, 41)]:
        sets = [sorted(rng.choice(49, size=k, replace=False).tolist()) for k in (1, 2, 5, 12, 49)]
        got = patch_masks(sets, GRID, size, "soft").double().numpy()
        for mask, patches in zip(got, sets, strict=True):
            expected = bilinear(grid_of(patches), *size)
            if size == (SIZE, SIZE):
                assert np.array_equal(mask, expected)  # every weight a multiple of 1/16: exact
            else:
                np.testing.assert_allclose(mask, expected, atol=1e-6)


def test_soft_patches_are_overlapping_blobs_and_hard_patches_are_squares():
    soft = patch_masks([[24]], GRID, (SIZE, SIZE), "soft")[0]  # the centre cell
    hard = patch_masks([[24]], GRID, (SIZE, SIZE), "hard")[0]
    assert soft[12, 12] == 1 and soft[12, 14] == 0.5 and soft[12, 16] == 0  # a tent 8 px wide
    assert soft[10, 14] == 0.25 and hard.sum() == 16 and set(hard.unique().tolist()) == {0.0, 1.0}
    corner = patch_masks([[0]], GRID, (SIZE, SIZE), "soft")[0]
    assert corner[0, 0] == 1 and corner[:4, :4].sum() > 0 and corner[4:, :].sum() == 0
    everything = patch_masks([list(range(49))], GRID, (SIZE, SIZE), "soft")[0]
    assert torch.equal(everything, torch.ones(SIZE, SIZE))  # the tents add up to one


def test_the_scorer_pastes_the_soft_mask_on_the_baseline():
    model = CellModel(terms=[(8, 9)])
    image, base = torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)
    scorer = PatchScorer(model, image, base, 0, GRID, 8, insertion="soft")
    sets = [(8, 9), (3,), (8, 9, 17, 40)]
    for patches, prob in zip(sets, scorer.score(sets), strict=True):
        mask = torch.tensor(bilinear(grid_of(patches), SIZE, SIZE), dtype=torch.float32)
        x = base + mask * (image - base)
        with torch.no_grad():
            assert prob == pytest.approx(model(x[None]).softmax(1)[0, 0].item(), abs=1e-6)


# ------------------------------------------------------------------ hand-made models


class CellModel(nn.Module):
    """Two classes; class 0's logit reads the red channel at the cell centres v (pixels 4r, 4c):

    z = scale * (1 if all cells of some term are present else 0) + weights . v
        + bridges . (pixel halfway between two cells) + bias

    On a white image over a black baseline, v is the 0/1 grid of the pasted cells, and a halfway
    pixel is 0.5 per pasted neighbour with soft patches (0 or 1 with hard ones)."""

    def __init__(self, terms=(), weights=None, bridges=(), scale=16.0, bias=-8.0):
        super().__init__()
        self.terms = [list(t) for t in terms]
        w = torch.zeros(GRID * GRID)
        for p, value in (weights or {}).items():
            w[p] = value
        self.register_buffer("w", w)
        self.bridges = list(bridges)  # (pixel row, pixel col, weight)
        self.scale, self.bias = scale, bias

    def forward(self, x):
        red = x[:, 0]
        v = red[:, ::4, ::4].reshape(len(x), -1)
        z = (v * self.w).sum(1) + self.bias
        if self.terms:
            present = torch.stack([v[:, t].min(1).values for t in self.terms], 1).max(1).values
            z = z + self.scale * present
        for row, col, weight in self.bridges:
            z = z + weight * red[:, row, col]
        return torch.stack([z, torch.zeros_like(z)], 1)


def ranking(*first):
    """A saliency map (7, 7) whose order starts with ``first``, then the other cells by index."""
    order = list(first) + [p for p in range(49) if p not in first]
    sal = torch.zeros(49)
    for rank, p in enumerate(order):
        sal[p] = 49 - rank
    return sal.view(GRID, GRID), order


# ------------------------------------------------------------------ the port of the reference rules


class Port:
    """The reference code's rules, one forward pass per patch set (memoised: same answers)."""

    def __init__(self, model, image, baseline="black", target=0):
        self.model, self.image = model, image
        self.base = torch.zeros_like(image) if baseline == "black" else None
        self.target = target
        self.memo: dict[frozenset, float] = {}
        # bilinear upsampling is linear in the grid: a set's mask is the sum of its cells' tents
        self.tents = [bilinear(grid_of([p]), SIZE, SIZE) for p in range(GRID * GRID)]
        with torch.no_grad():
            self.full = model(image[None]).softmax(1)[0, target].item()

    def prob(self, patches) -> float:
        key = frozenset(patches)
        if key not in self.memo:
            mask = torch.tensor(sum((self.tents[p] for p in key), np.zeros((SIZE, SIZE))),
                                dtype=torch.float32)
            x = self.image * mask + self.base * (1 - mask)
            with torch.no_grad():
                self.memo[key] = self.model(x[None]).softmax(1)[0, self.target].item()
        return self.memo[key]

    def prune(self, mask: set, needed: float) -> tuple:
        """remove_extra_patches: walk the inserted cells in raster order, drop each whose removal
        stays above ``needed``; repeat until a walk removes nothing."""
        mask = set(mask)
        while True:
            removed = False
            for p in sorted(mask):
                if self.prob(mask - {p}) > needed:
                    mask = mask - {p}
                    removed = True
            if not removed:
                return tuple(sorted(mask))

    def beam(self, order, beam_width=3, successors=15, max_roots=10, max_patches=49, thresh=0.9):
        needed = thresh * self.full
        roots, beam = [], [frozenset()]
        for _ in range(max_patches):
            found = []
            for state in beam:
                for p in [p for p in order if p not in state][:successors]:
                    found.append((state | {p}, self.prob(state | {p})))
            if not found:
                break
            beam = []
            for mask, prob in sorted(found, key=lambda t: t[1], reverse=True):
                if prob > needed:
                    root = self.prune(mask, needed)
                    if root not in roots:
                        roots.append(root)
                else:
                    beam.append(mask)
                    if len(beam) > beam_width:
                        break
            if len(roots) > max_roots:
                break
        return roots

    def combinations(self, order, top=20, size=4, thresh=0.9):
        roots, first_probs = [], []
        for combo in itertools.combinations(order[:top], size):
            prob = self.prob(combo)
            if prob > thresh:
                root = self.prune(set(combo), thresh)
                if root not in roots:
                    roots.append(root)
                    first_probs.append(prob)
        return roots, first_probs

    @staticmethod
    def largest(roots, overlap=1):
        """maximal_overlapThresh_set: depth-first over ascending index lists, first longest."""
        n = len(roots)
        inter = [[len(set(a) & set(b)) for b in roots] for a in roots]

        def dfs(refset):
            nxt = [j for j in range(refset[-1] + 1, n) if all(inter[j][k] <= overlap for k in refset)]
            if not nxt:
                return refset
            best = []
            for j in nxt:
                found = dfs(refset + [j])
                if len(best) < len(found):
                    best = found
            return best

        best = []
        for i in range(n):
            found = dfs([i])
            if len(best) < len(found):
                best = found
        return best

    @staticmethod
    def disparity(roots, probs):
        """set_filtering: least overlap first (overlap of a root with itself = its size), ties by
        the higher probability, then the lower index."""
        n = len(roots)
        im = np.array([[len(set(a) & set(b)) for b in roots] for a in roots])
        chosen = []
        while len(chosen) < n:
            if not chosen:
                low = im.min()
                tied = [i for i in range(n) if im[i].min() == low]
            else:
                worst = {i: max([0] + [im[i][j] for j in chosen]) for i in range(n) if i not in chosen}
                tied = [i for i in worst if worst[i] == min(worst.values())]
            best, top = -1, -1.0
            for i in tied:
                if probs[i] > top:
                    best, top = i, probs[i]
            chosen.append(best)
        return chosen

    def tree(self, roots, absolute=False, limit=40):
        """build_tree: every node drawn anew; expanded when int(around(value, 3) * 100) > 40;
        children remove the node's first three cells."""

        def node(conj):
            prob = self.prob(conj)
            value = prob if absolute else prob / self.full
            children = []
            if int(np.around(value, decimals=3) * 100) > limit and len(conj) > 1:
                for i in range(min(3, len(conj))):
                    children.append((conj[i], node(conj[:i] + conj[i + 1 :])))
            return tuple(conj), prob, children

        return [node(list(r)) for r in roots]


def result_tree(r):
    kids = defaultdict(list)
    for e in r.edges:
        kids[e.parent].append((e.removed, e.child))

    def node(i):
        n = r.nodes[i]
        return tuple(n.patches), n.prob, [(removed, node(c)) for removed, c in kids[i]]

    return [node(i) for i, n in enumerate(r.nodes) if n.root]


def shape_and_probs(trees):
    """(structure without probabilities, probabilities in walk order)."""
    probs = []

    def walk(t):
        patches, prob, children = t
        probs.append(prob)
        return patches, [(removed, walk(c)) for removed, c in children]

    return [walk(t) for t in trees], probs


def assert_same_tree(ours, port):
    (shape_a, probs_a), (shape_b, probs_b) = shape_and_probs(ours), shape_and_probs(port)
    assert shape_a == shape_b
    assert probs_a == pytest.approx(probs_b, abs=1e-6)


# ------------------------------------------------------------------ whole runs against the port

TERMS = [(8, 9), (9, 10), (30, 31, 37), (16, 23), (30, 31, 38)]
GRADED = {30: 1.0, 31: 0.75, 37: 0.5, 24: 0.25}
BRIDGES = [(6, 4, 0.5), (18, 14, 0.75)]  # halfway between cells 8/15 and 30/31 (soft: 0.5 each)


def test_reference_run_finds_the_ports_roots_drawn_roots_and_tree():
    model = CellModel(TERMS, GRADED, BRIDGES)
    sal, order = ranking(24, 2, 8, 30, 9, 31, 10, 37, 16, 38, 23)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal, batch_size=16)
    port = Port(model, WHITE)
    roots = port.beam(order)
    assert [tuple(x) for x in r.roots] == roots
    assert sorted(roots) == sorted(TERMS)  # every planted term, nothing else: all roots are kept
    assert r.root_probs == pytest.approx([port.prob(x) for x in roots], abs=1e-6)
    assert r.shown == Port.largest(roots)[:3] == [0, 2, 3]  # (30, 31, 38) shares 2 with the first
    assert_same_tree(result_tree(r), port.tree([roots[i] for i in r.shown]))
    p = r.params
    assert (p["variant"], p["insertion"], p["baseline"], p["search"], p["prune"]) == (
        "reference", "soft", "black", "beam", "raster")
    assert (p["beam_width"], p["successors"], p["max_roots"], p["max_patches"], p["threshold"]) == (
        3, 15, 10, 49, 0.9)
    assert (p["select"], p["max_shown"], p["max_overlap"], p["graph"], p["expand_first"]) == (
        "largest", 3, 1, "tree", 3)
    assert p["saliency"] == "given"


def test_more_than_max_roots_stops_the_search_after_the_depth_that_passed_it():
    singles = [(p,) for p in (3, 5, 11, 17, 19, 25, 33, 40, 44, 46, 47, 48)]
    model = CellModel(singles)
    sal, order = ranking(3, 5, 11, 17, 19, 25, 33, 40, 44, 46, 47, 48)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal)
    roots = Port(model, WHITE).beam(order)
    assert [tuple(x) for x in r.roots] == roots and r.stop_reason == "max_roots"
    assert len(roots) == 12 and r.depth == 1  # all twelve of depth 1 kept although 10 were asked
    assert r.shown == Port.largest(roots)[:3] == [0, 1, 2]


def test_a_graded_root_gives_the_reference_tree_first_three_patches_removed():
    model = CellModel(weights={p: 2.0 for p in (1, 2, 3, 4, 5)}, bias=-7.0)  # 5 cells: z = 3
    sal, order = ranking(1, 2, 3, 4, 5)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal)
    port = Port(model, WHITE)
    assert [tuple(x) for x in r.roots] == port.beam(order) == [(1, 2, 3, 4, 5)]
    assert_same_tree(result_tree(r), port.tree([(1, 2, 3, 4, 5)]))
    # by hand: 4 cells keep 0.73 / 0.95 = 77 % (expanded), 3 cells 28 % (not); only the first
    # three cells of a node are removed, and a set reached twice is drawn twice
    assert len(r.nodes) == 1 + 3 + 9 and [n.level for n in r.nodes].count(2) == 9
    assert sorted(e.removed for e in r.edges if e.parent == 0) == [1, 2, 3]
    threes = [tuple(n.patches) for n in r.nodes if n.level == 2]
    assert threes.count((3, 4, 5)) == 2 and (1, 2, 3) not in threes


def test_expansion_on_relative_or_absolute_probability():
    model = CellModel(weights={p: 1.0 for p in (1, 2, 3, 4, 5)}, bias=-4.5)  # full image p = 0.62
    sal, order = ranking(1, 2, 3, 4, 5)
    port = Port(model, WHITE)
    relative = structured_attention_graph(model, WHITE, 0, saliency=sal)
    absolute = structured_attention_graph(model, WHITE, 0, saliency=sal, expand_scale="absolute")
    assert_same_tree(result_tree(relative), port.tree([(1, 2, 3, 4, 5)]))
    assert_same_tree(result_tree(absolute), port.tree([(1, 2, 3, 4, 5)], absolute=True))
    assert len(relative.nodes) == 13 and len(absolute.nodes) == 4  # 4 cells: 61 % of 0.62, p 0.38


def test_max_patches_caps_the_candidates():
    model = CellModel(weights={p: 2.0 for p in (1, 2, 3, 4, 5)}, bias=-7.0)  # needs all five
    sal, _ = ranking(1, 2, 3, 4, 5)
    capped = structured_attention_graph(model, WHITE, 0, saliency=sal, max_patches=4)
    assert capped.roots == [] and capped.stop_reason == "max_patches" and capped.depth == 4
    for size, expected in ((4, []), (5, [[1, 2, 3, 4, 5]])):
        r = structured_attention_graph(model, WHITE, 0, saliency=sal, variant="reference-2020",
                                       max_patches=size)
        assert r.roots == expected and r.params["max_patches"] == size


def test_reference_2020_run_matches_the_port():
    model = CellModel(TERMS, GRADED, BRIDGES)
    sal, order = ranking(24, 2, 8, 30, 9, 31, 10, 37, 16, 38, 23, 15)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal, variant="reference-2020")
    port = Port(model, WHITE)
    roots, first_probs = port.combinations(order)
    assert [tuple(x) for x in r.roots] == roots and sorted(roots) == sorted(TERMS)
    assert r.shown == Port.disparity(roots, first_probs)[:3]
    assert_same_tree(result_tree(r), port.tree([roots[i] for i in r.shown], absolute=True))
    p = r.params
    assert (p["search"], p["max_patches"], p["top_patches"], p["threshold_scale"], p["select"]) == (
        "combinations", 4, 20, "absolute", "disparity")
    assert r.forward_passes >= math.comb(20, 4)


# ------------------------------------------------------------------ single rules, known answers


def test_raster_pruning_keeps_the_later_term_where_best_first_keeps_the_likelier():
    model = CellModel([(8, 9), (9, 10)], weights={8: 1.0})  # {8, 9} more probable than {9, 10}
    scorer = PatchScorer(model, WHITE, torch.zeros_like(WHITE), 0, GRID, 8, insertion="soft")
    needed = 0.5
    assert prune_raster(scorer, [(8, 9, 10)], needed) == [(9, 10)]  # 8 goes first, still sufficient
    assert prune_to_minimal(scorer, [(8, 9, 10)], needed) == [(8, 9)]
    assert prune_raster(scorer, [(3, 9, 10, 40), (8, 9)], needed) == [(9, 10), (8, 9)]


def test_largest_compatible_is_the_depth_first_search_of_the_reference():
    rng = np.random.default_rng(1)
    for _ in range(40):
        roots = [tuple(sorted(rng.choice(12, size=rng.integers(1, 5), replace=False).tolist()))
                 for _ in range(rng.integers(1, 11))]
        for overlap in (0, 1, 2):
            assert largest_compatible(roots, overlap) == Port.largest(roots, overlap)
    assert largest_compatible([(1, 2), (2, 3), (1, 3), (7, 8)], 0) == [0, 3]


def test_disparity_order_is_the_2020_least_overlap_order():
    rng = np.random.default_rng(2)
    for _ in range(100):
        roots = [tuple(sorted(rng.choice(15, size=rng.integers(1, 6), replace=False).tolist()))
                 for _ in range(rng.integers(1, 13))]
        probs = rng.choice([0.91, 0.95, 0.99], size=len(roots)).tolist()
        assert disparity_order(roots, probs) == Port.disparity(roots, probs)
    # every root has a disjoint partner: the likeliest goes first, then the one it overlaps least
    assert disparity_order([(1, 2), (1, 3), (4, 5)], [0.9, 0.95, 0.9]) == [1, 2, 0]


def test_printed_percent_is_the_reference_rounding():
    for value in [0.4094, 0.4096, 0.41, 0.4095, 0.4105, 0.57, 0.999, 1.0, 0.0, 0.12345, 0.4005]:
        assert printed_percent(value) == int(np.around(value, decimals=3) * 100)
    assert printed_percent(0.4094) == 40 and printed_percent(0.4096) == 41  # 0.41 -> expanded


def test_tree_stops_at_max_nodes_and_says_so():
    model = CellModel(weights={p: 2.0 for p in (1, 2, 3, 4, 5)}, bias=-7.0)
    scorer = PatchScorer(model, WHITE, torch.zeros_like(WHITE), 0, GRID, 8, insertion="soft")
    nodes, edges, cut = build_tree(scorer, [(1, 2, 3, 4, 5)], scorer.score([tuple(range(49))])[0],
                                   0.4, max_nodes=5)
    assert len(nodes) == 5 and len(edges) == 4 and cut


# ------------------------------------------------------------------ defaults, options, report


def test_default_saliency_is_the_references_7x7_igos_call():
    model = CellModel(TERMS, GRADED, BRIDGES, scale=4.0)
    r = structured_attention_graph(model, WHITE, 0, max_patches=2)
    options = r.params["saliency_options"]
    assert r.params["saliency"] == "igos" and r.saliency_forward_passes > 0
    assert {k: options[k] for k in ("method", "mask_size", "iterations", "ig_steps", "alpha0", "l1", "l2")} == {
        "method": "igos", "mask_size": 7, "iterations": 2, "ig_steps": 20, "alpha0": 200.0, "l1": 1.0, "l2": 20.0}
    assert options["baseline"] == "black" and r.saliency.shape == (7, 7)


def test_method_options_pick_the_variant_and_its_overrides():
    sag = METHODS["sag"]
    default = sag_arguments(sag.options(progress=False))
    assert default["variant"] == "reference" and default["baseline"] is None  # the variant's black
    ours = sag_arguments(sag.options(sag_variant="netreveal", baseline="blur", progress=False))
    assert ours["baseline"] == "blur"
    picked = sag_arguments(sag.options(sag_patches="hard", sag_max_patches=4, sag_select="probable",
                                       sag_expand_above=0.5, sag_beam_width=2, sag_baseline="blur",
                                       sag_saliency_iterations=3, progress=False))
    model = CellModel(TERMS, GRADED, BRIDGES)
    sal, _ = ranking(24, 2, 8, 30, 9, 31, 10, 37, 16, 38, 23)
    picked.pop("saliency_options")
    r = structured_attention_graph(model, WHITE, 0, saliency=sal, **picked)
    p = r.params
    assert (p["insertion"], p["max_patches"], p["select"], p["expand_above"], p["beam_width"], p["baseline"]) == (
        "hard", 4, "probable", 0.5, 2, "blur")
    with pytest.raises(NetrevealError, match="sag-variant"):
        sag.options(sag_variant="nope")
    with pytest.raises(NetrevealError, match="variant"):
        structured_attention_graph(model, WHITE, 0, saliency=sal, variant="nope")


def test_cli_refuses_an_unknown_variant(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:  # argparse's own check of the choices
        main(["evaluate", "--n", "1", "--method", "sag", "--sag-variant", "nope", "--csv", str(tmp_path / "e.csv")])
    assert stop.value.code == 2 and "--sag-variant: invalid choice: 'nope'" in capsys.readouterr().err
    fails_with_one_line(capsys, ["evaluate", "--n", "1", "--method", "sag", "--sag-max-patches", "0",
                                 "--csv", str(tmp_path / "e.csv")], "--sag-max-patches")
    assert not (tmp_path / "e.csv").exists()


def test_report_writes_every_root_as_a_set_and_says_why_some_are_not_drawn():
    model = CellModel(TERMS, GRADED, BRIDGES)
    sal, _ = ranking(24, 2, 8, 30, 9, 31, 10, 37, 16, 38, 23)
    r = structured_attention_graph(model, WHITE, 0, saliency=sal)
    text = roots_summary(r)
    assert text.startswith("5 minimal sufficient sets: <code>" + root_sets_text(r.roots))
    assert "{P8, P9} or {P9, P10}" in root_sets_text(r.roots)
    assert f"Drawn below: <code>{root_sets_text(r.shown_roots)}</code>" in text
    assert "2 not drawn because the graph draws at most 3, taken from the largest group of roots that " \
           "pairwise share at most 1 patch" in text
    r.shown = [0, 1, 2, 3, 4]
    assert "not drawn" not in roots_summary(r)
    r.roots, r.shown = [], []
    assert "no sufficient patch set found" in roots_summary(r)
