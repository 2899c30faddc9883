"""The rules of the paper's reference code for finding and choosing roots.

The published SAG code (Shitole et al.) exists in two releases, both reproduced here on top of the
batched :class:`~netreveal.sag.patches.PatchScorer` (batching and caching change no result):

- :func:`reference_beam_search`, the current release (the NeurIPS 2021 paper's beam search);
- :func:`combination_search`, the 2020 release (every ``max_patches``-subset of the most salient
  ``top_patches`` patches);
- :func:`prune_raster`, the pruning both use; :func:`largest_compatible` (current release) and
  :func:`disparity_order` (2020 release) choose the roots the graph is drawn from.

Sufficient means a probability strictly above ``needed``. Patch order ("most salient first") is
the saliency map's order, ties broken by patch index.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from netreveal.sag.patches import PatchScorer, PatchSet
from netreveal.sag.search import Pruner


@dataclasses.dataclass
class _Walk:
    current: PatchSet
    walk: list[int]
    position: int = 0
    removed: bool = False


def prune_raster(scorer: PatchScorer, sets: Sequence[PatchSet], needed: float) -> list[PatchSet]:
    """Each set shrunk as the reference does: walk its patches in raster order (ascending index)
    and drop every patch whose removal keeps the set sufficient, the removals adding up along the
    walk; walk again over what is left until a walk removes nothing. The result is 1-minimal.

    Sets are pruned in lockstep (one batched scoring call per step of all walks)."""
    walks = [_Walk(tuple(s), list(s)) for s in sets]
    active = [i for i, w in enumerate(walks) if w.walk]
    while active:
        trials = []
        for i in active:
            w = walks[i]
            trials.append(tuple(p for p in w.current if p != w.walk[w.position]))
        probs = scorer.score(trials)
        still = []
        for i, trial, prob in zip(active, trials, probs, strict=True):
            w = walks[i]
            if prob > needed:
                w.current, w.removed = trial, True
            w.position += 1
            if w.position == len(w.walk):
                if not (w.removed and w.current):
                    continue  # a walk removed nothing (or nothing is left): minimal
                w.walk, w.position, w.removed = list(w.current), 0, False
            still.append(i)
        active = still
    return [w.current for w in walks]


def reference_beam_search(
    scorer: PatchScorer,
    order: Sequence[int],
    needed: float,
    *,
    beam_width: int,
    successors: int,
    max_roots: int,
    max_patches: int,
    prune: Pruner = prune_raster,
    patience: int | None = None,
    progress=None,
) -> tuple[list[PatchSet], int, str]:
    """Roots found by the current reference release's beam search from the empty set.

    At each depth every beam state (duplicates included) is extended by each of its
    ``successors`` most salient unused patches. The candidates, ranked by probability (ties in the
    order they were made), are walked in turn: a sufficient one is pruned (``prune``) and kept as
    a root when new; an insufficient one joins the next beam, and the walk stops as soon as the
    beam holds more than ``beam_width`` states (so it keeps ``beam_width + 1``, and sufficient
    candidates ranked below that point are not pruned). The search stops once more than
    ``max_roots`` roots are known (every root of that depth is kept), after ``max_patches``
    depths, or when no state can grow. With ``patience`` (not the reference's rule; None: off) it
    also stops once that many consecutive depths after the first root brought no new root.
    Returns (roots in discovery order, depths scored, stop reason: "max_roots" | "max_patches" |
    "exhausted" | "patience").
    """
    roots: list[PatchSet] = []
    found: set[PatchSet] = set()
    beam: list[PatchSet] = [()]
    depth = 0
    idle = 0  # depths since the last new root
    while depth < max_patches:
        if patience is not None and roots and idle >= patience:
            return roots, depth, "patience"
        candidates = []
        for state in beam:
            used = set(state)
            fresh = [p for p in order if p not in used][:successors]
            candidates += [tuple(sorted((*state, p))) for p in fresh]
        if not candidates:
            return roots, depth, "exhausted"
        depth += 1
        probs = scorer.score(candidates)
        ranked = sorted(range(len(candidates)), key=lambda i: -probs[i])  # stable
        sufficient: list[PatchSet] = []
        beam = []
        for i in ranked:
            if probs[i] > needed:
                sufficient.append(candidates[i])
            else:
                beam.append(candidates[i])
                if len(beam) > beam_width:
                    break
        before = len(roots)
        for root in prune(scorer, sufficient, needed):
            if root not in found:
                found.add(root)
                roots.append(root)
        idle = 0 if len(roots) > before else idle + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(roots=len(roots), scored=scorer.forward_passes)
        if len(roots) > max_roots:
            return roots, depth, "max_roots"
    return roots, depth, "max_patches"


def combination_search(
    scorer: PatchScorer,
    order: Sequence[int],
    needed: float,
    *,
    top_patches: int,
    max_patches: int,
    prune: Pruner = prune_raster,
) -> tuple[list[PatchSet], list[float], int, str]:
    """Roots found by the 2020 reference release: every ``max_patches``-subset of the
    ``top_patches`` most salient patches (in ``itertools.combinations`` order over the salience
    ranking) is scored; each sufficient one is pruned and kept when new.

    Returns (roots in discovery order, the probability of the candidate each root was first pruned
    from, the subset size, "exhausted")."""
    pool = list(order[:top_patches])
    size = max(1, min(max_patches, len(pool)))
    combos = [tuple(sorted(c)) for c in itertools.combinations(pool, size)]
    probs = scorer.score(combos)
    sufficient = [(c, p) for c, p in zip(combos, probs, strict=True) if p > needed]
    pruned = prune(scorer, [c for c, _ in sufficient], needed)
    roots: list[PatchSet] = []
    found: set[PatchSet] = set()
    first_probs: list[float] = []
    for root, (_, prob) in zip(pruned, sufficient, strict=True):
        if root not in found:
            found.add(root)
            roots.append(root)
            first_probs.append(prob)
    return roots, first_probs, size, "exhausted"


def largest_compatible(roots: Sequence[PatchSet], max_overlap: int) -> list[int]:
    """Indices (ascending) of the largest set of roots that pairwise share at most
    ``max_overlap`` patches. Among equally large sets: the first a depth-first search over
    ascending index lists reaches, i.e. the lexicographically smallest (the current reference
    release's choice)."""
    sets = [set(r) for r in roots]
    n = len(sets)
    fits = [[len(sets[i] & sets[j]) <= max_overlap for j in range(n)] for i in range(n)]
    best: list[int] = []

    def grow(chosen: list[int], candidates: list[int]) -> None:
        nonlocal best
        if not candidates:
            if len(chosen) > len(best):
                best = chosen
            return
        for k, j in enumerate(candidates):
            if len(chosen) + len(candidates) - k <= len(best):
                return  # no branch from here on can be larger than the best found
            grow([*chosen, j], [m for m in candidates[k + 1 :] if fits[j][m]])

    for i in range(n):
        if n - i <= len(best):
            break
        grow([i], [j for j in range(i + 1, n) if fits[i][j]])
    return best


def disparity_order(roots: Sequence[PatchSet], probs: Sequence[float]) -> list[int]:
    """All root indices in the 2020 release's diversity order.

    Overlap of two roots = shared patches (of a root with itself: its size). First pick: a root
    whose smallest overlap with any root (itself included) is the smallest of all; each next pick:
    the unpicked root whose largest overlap with the picked ones is smallest. Ties go to the
    higher ``probs`` value, then to the lower index."""
    sets = [set(r) for r in roots]
    n = len(sets)
    overlap = [[len(sets[i] & sets[j]) for j in range(n)] for i in range(n)]
    chosen: list[int] = []
    score = {i: min(overlap[i]) for i in range(n)}  # first pick; then the worst overlap so far
    while score:
        low = min(score.values())
        pick = max((i for i in score if score[i] == low), key=lambda i: (probs[i], -i))
        chosen.append(pick)
        del score[pick]
        first = len(chosen) == 1
        for i in score:
            score[i] = overlap[i][pick] if first else max(score[i], overlap[i][pick])
    return chosen
