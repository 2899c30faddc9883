"""netreveal's own search for minimal sufficient patch sets: beam search, best-first pruning.

The image is cut into a ``grid x grid`` patch grid. A patch set S is scored by the target
probability of the image with only S's patches pasted on the baseline
(:class:`~netreveal.sag.patches.PatchScorer`); S is *sufficient* when that probability is above
``needed`` (``threshold`` times the full image's). Every depth of the search and every pruning
round is one batched scoring request. The reference code's search is in
:mod:`netreveal.sag.reference`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netreveal.sag.patches import PatchScorer, PatchSet, pixel_patches

Pruner = Callable[[PatchScorer, Sequence[PatchSet], float], list[PatchSet]]

__all__ = [  # the scorer and pixel map live in netreveal.sag.patches; kept importable from here
    "PatchScorer",
    "PatchSet",
    "Pruner",
    "beam_search",
    "diverse_subset",
    "pixel_patches",
    "prune_to_minimal",
]


def prune_to_minimal(
    scorer: PatchScorer, sets: Sequence[PatchSet], needed: float
) -> list[PatchSet]:
    """Greedily shrink each sufficient set until no single patch can be removed (1-minimal).

    All sets are pruned in lockstep: each round scores every one-patch removal of every set still
    shrinking in one batched call, and each set drops the patch whose removal keeps the highest
    probability among the removals that stay sufficient (``prob > needed``).
    """
    current = list(sets)
    final: list[PatchSet | None] = [None] * len(current)
    active = list(range(len(current)))
    while active:
        removals = {i: [tuple(p for p in current[i] if p != q) for q in current[i]] for i in active}
        probs = scorer.score(s for i in active for s in removals[i])
        offset, still = 0, []
        for i in active:
            options = removals[i]
            scores = probs[offset : offset + len(options)]
            offset += len(options)
            best = max(
                (k for k in range(len(options)) if scores[k] > needed),
                key=lambda k: scores[k],
                default=None,
            )
            if best is None:
                final[i] = current[i]
            else:
                current[i] = options[best]
                still.append(i)
        active = still
    return [s for s in final if s is not None]


def beam_search(
    scorer: PatchScorer,
    order: Sequence[int],
    needed: float,
    *,
    beam_width: int,
    successors: int,
    max_roots: int,
    max_depth: int,
    patience: int | None = None,
    salient_path: bool = True,
    prune: Pruner | None = None,
    progress=None,
) -> tuple[list[PatchSet], int, str]:
    """Minimal sufficient sets found by beam search from the empty set.

    ``order`` ranks patches by saliency (most salient first); each beam state is extended by its
    ``successors`` most salient unused patches. All candidates of a depth are scored in one batched
    call. Sufficient candidates that contain no known root are pruned to 1-minimal by ``prune``
    (default :func:`prune_to_minimal`, as many at a time as roots are still needed) and kept when
    new; the ``beam_width`` best insufficient ones form the next beam.

    With ``salient_path`` the beam also keeps the saliency map's own insertion path (the ``depth``
    most salient patches) while it is insufficient: when a class needs several patches together,
    inserting any one of them alone can lower the probability, and a beam ranked by probability
    alone can drift away from all of them. With ``patience``, the search also stops once that
    many consecutive depths after the first root brought no new root.
    Returns (roots, depth reached, stop reason: "max_roots" | "exhausted" | "max_depth" |
    "patience").
    """
    prune = prune or prune_to_minimal
    roots: list[PatchSet] = []
    found: set[PatchSet] = set()
    root_sets: list[set[int]] = []
    beam: list[PatchSet] = [()]
    depth = 0
    idle = 0  # depths since the last new root
    while True:
        if len(roots) >= max_roots:
            return roots, depth, "max_roots"
        if patience is not None and roots and idle >= patience:
            return roots, depth, "patience"
        if not beam:
            return roots, depth, "exhausted"
        if depth >= max_depth:
            return roots, depth, "max_depth"
        depth += 1
        candidates: dict[PatchSet, None] = {}
        for state in beam:
            used, added = set(state), 0
            for p in order:
                if added >= successors:
                    break
                if p not in used:
                    candidates[tuple(sorted(state + (p,)))] = None
                    added += 1
        cands = list(candidates)
        probs = scorer.score(cands)
        ranked = sorted(range(len(cands)), key=lambda i: -probs[i])  # stable: ties keep order
        sufficient = [cands[i] for i in ranked if probs[i] > needed]
        beam = [cands[i] for i in ranked if probs[i] <= needed][:beam_width]
        path = tuple(sorted(order[:depth]))
        if salient_path and path in candidates and path not in beam and scorer.cache[path] <= needed:
            beam.append(path)
        before = len(roots)
        while sufficient and len(roots) < max_roots:
            # a sufficient candidate holding a known root is explained by it: not pruned again
            sufficient = [c for c in sufficient if not any(r <= set(c) for r in root_sets)]
            take = max_roots - len(roots)
            group, sufficient = sufficient[:take], sufficient[take:]
            for root in prune(scorer, group, needed):
                if root not in found and len(roots) < max_roots:
                    found.add(root)
                    roots.append(root)
                    root_sets.append(set(root))
        idle = 0 if len(roots) > before else idle + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(roots=len(roots), scored=scorer.forward_passes)


def diverse_subset(
    roots: Sequence[PatchSet], probs: Sequence[float], max_shown: int, max_overlap: int
) -> list[int]:
    """Indices of at most ``max_shown`` roots, most probable first, pairwise sharing at most
    ``max_overlap`` patches (greedy)."""
    chosen: list[int] = []
    for i in sorted(range(len(roots)), key=lambda i: -probs[i]):
        if len(chosen) >= max_shown:
            break
        if all(len(set(roots[i]) & set(roots[j])) <= max_overlap for j in chosen):
            chosen.append(i)
    return chosen
