"""Finding minimal sufficient patch sets: batched patch scoring, beam search, greedy pruning.

The image is cut into a ``grid x grid`` patch grid. A patch set S is scored by the target
probability of the image with only S's patches pasted on the baseline; S is *sufficient* when that
probability is at least ``threshold`` times the full image's. Every scoring request is a list of
sets, run through the model in chunks of ``batch_size`` (and cached, so no set is scored twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

PatchSet = tuple[int, ...]  # sorted patch indices


def pixel_patches(size: tuple[int, int], grid: int, device=None) -> torch.Tensor:
    """(H, W) long map from pixel to patch index ``row * grid + col`` (near-equal patch sizes)."""
    h, w = size
    rows = torch.arange(h, device=device) * grid // h
    cols = torch.arange(w, device=device) * grid // w
    return rows[:, None] * grid + cols[None, :]


class PatchScorer:
    """Target probability of patch sets of one image, batched and cached."""

    def __init__(
        self,
        model: nn.Module,
        image: torch.Tensor,
        baseline: torch.Tensor,
        target: int,
        grid: int,
        batch_size: int,
    ):
        self.model = model
        self.image = image
        self.baseline = baseline
        self.delta = image - baseline
        self.target = int(target)
        self.grid = int(grid)
        self.batch_size = int(batch_size)
        self.pixel_patch = pixel_patches(tuple(image.shape[-2:]), grid, image.device)
        self.cache: dict[PatchSet, float] = {}
        self.forward_passes = 0

    def selection(self, sets: Sequence[PatchSet]) -> torch.Tensor:
        """(n, grid * grid) bool, True on the patches of each set: built on the host and copied
        to the image's device in one go."""
        sel = torch.zeros(len(sets), self.grid * self.grid, dtype=torch.bool)
        rows = [i for i, s in enumerate(sets) for _ in s]
        cols = [p for s in sets for p in s]
        if cols:
            sel[torch.tensor(rows), torch.tensor(cols)] = True
        return sel.to(self.image.device)

    def masks(self, sets: Sequence[PatchSet], selection: torch.Tensor | None = None) -> torch.Tensor:
        """(n, H, W) float masks, 1 on the patches of each set (``selection``: theirs, if known)."""
        sel = self.selection(sets) if selection is None else selection
        return sel[:, self.pixel_patch].to(self.image.dtype)

    @torch.no_grad()
    def score(self, sets: Iterable[PatchSet]) -> list[float]:
        """Probabilities of ``sets`` (sorted tuples), scoring the new ones in batches; the batches'
        probabilities are read on the host once, after the last batch."""
        sets = list(sets)
        new = list(dict.fromkeys(s for s in sets if s not in self.cache))
        if new:
            probs = []
            selection = self.selection(new)
            for start in range(0, len(new), self.batch_size):
                chunk = new[start : start + self.batch_size]
                masks = self.masks(chunk, selection[start : start + self.batch_size])
                x = self.baseline + masks[:, None] * self.delta
                probs.append(self.model(x).softmax(dim=1)[:, self.target])
                self.forward_passes += len(chunk)
            self.cache.update(zip(new, torch.cat(probs).tolist(), strict=True))
        return [self.cache[s] for s in sets]


def prune_to_minimal(
    scorer: PatchScorer, sets: Sequence[PatchSet], needed: float
) -> list[PatchSet]:
    """Greedily shrink each sufficient set until no single patch can be removed (1-minimal).

    All sets are pruned in lockstep: each round scores every one-patch removal of every set still
    shrinking in one batched call, and each set drops the patch whose removal keeps the highest
    probability among the removals that stay sufficient (``prob >= needed``).
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
                (k for k in range(len(options)) if scores[k] >= needed),
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
    progress=None,
) -> tuple[list[PatchSet], int, str]:
    """Minimal sufficient sets found by beam search from the empty set.

    ``order`` ranks patches by saliency (most salient first); each beam state is extended by its
    ``successors`` most salient unused patches. All candidates of a depth are scored in one batched
    call. Sufficient candidates that contain no known root are pruned to 1-minimal (best first, as
    many at a time as roots are still needed) and kept when new; the ``beam_width`` best
    insufficient ones form the next beam.

    With ``salient_path`` the beam also keeps the saliency map's own insertion path (the ``depth``
    most salient patches) while it is insufficient: when a class needs several patches together,
    inserting any one of them alone can lower the probability, and a beam ranked by probability
    alone can drift away from all of them. With ``patience``, the search also stops once that
    many consecutive depths after the first root brought no new root.
    Returns (roots, depth reached, stop reason: "max_roots" | "exhausted" | "max_depth" |
    "patience").
    """
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
        sufficient = [cands[i] for i in ranked if probs[i] >= needed]
        beam = [cands[i] for i in ranked if probs[i] < needed][:beam_width]
        path = tuple(sorted(order[:depth]))
        if salient_path and path in candidates and path not in beam and scorer.cache[path] < needed:
            beam.append(path)
        before = len(roots)
        while sufficient and len(roots) < max_roots:
            # a sufficient candidate holding a known root is explained by it: not pruned again
            sufficient = [c for c in sufficient if not any(r <= set(c) for r in root_sets)]
            take = max_roots - len(roots)
            group, sufficient = sufficient[:take], sufficient[take:]
            for root in prune_to_minimal(scorer, group, needed):
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
