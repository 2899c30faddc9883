"""The two settings I-GOS and iGOS++ run with: ``reference`` (the published code's loop) and
``netreveal`` (this package's earlier loop, kept for comparison and for old results), and ``fast``:
the reference objective and direction with a cheaper line search and an early stop.

A :class:`Variant` fixes everything about the optimisation loop that is not a plain weight or
count: how the mask is upsampled, how the data terms are weighed in the descent direction and in
the line search, what the line search scores, which smoothness term is used, and the step rules.
``docs/methods/igos.md`` explains each difference and why the default is what it is.
"""

from __future__ import annotations

import dataclasses

from netreveal.errors import NetrevealError

VARIANTS = ("fast", "reference", "netreveal")


@dataclasses.dataclass(frozen=True)
class Variant:
    """How one I-GOS / iGOS++ setting runs its loop.

    - ``align_corners``: bilinear mask upsampling with corner cells on the corner pixels.
    - ``grad_weight`` / ``search_weight``: weight of each data term in the descent direction / in
      the objective the line search compares (iGOS++ has four terms, I-GOS one).
    - ``combine_upsampled``: iGOS++'s combined term is ``up(Md) * up(Mi)`` (else ``up(Md * Mi)``).
    - ``search_score``: ``"point"`` scores f(Phi(M)) in the line search (I-GOS reference), else
      ``"path"`` (the mean along the integration path, as the descent direction uses).
    - ``search_noise``: the line search scores paths with fresh noise at every trial.
    - ``smooth``: ``"tv"``, ``"bilateral"`` (netreveal's, on rescaled differences) or
      ``"reference-bilateral"`` (see :class:`~netreveal.attribution.igos_reg.ReferenceBilateralTV`).
    - ``l1_decay`` / ``decay_rule``: lower the L1 weight when the deletion score stalls, judged on the
      mask before the last update (``"before-step"``, the I-GOS code) or after it (``"after-step"``).
    - ``warm_start``: start each line search near the last accepted step.
    - ``alpha0`` / ``alpha_scales``: the line search's first step, scaled by mask cells / 28x28 or not.
    - ``take_last_step``: when no step passes the sufficient-decrease test, take the first trial
      below the minimum step anyway (the reference code) instead of keeping the mask.
    - ``reuse_direction``: a path-score line search scores its trials with the noise table of the
      iteration's descent direction and takes its base value from the direction's own forward
      passes (no rescoring of the current mask).
    - ``decay``: the line search's backtracking factor; ``max_trials``: trials per iteration before
      the search gives up and keeps the mask (0: until the step falls below the minimum).
    - ``lookahead`` / ``grow``: iGOS++ only; each trial is scored by the next iteration's direction
      pass (see :mod:`netreveal.attribution.igos_lookahead`), an accepted step grows by ``grow``;
      ``lookahead_decay``: a rejected trial's step is multiplied by it; ``lookahead_noise``:
      ``"run"`` draws the path noise once for the whole run (a trial's loss and the loss it must
      beat see the same noise), ``"iteration"`` once per pass.
    - ``tol`` / ``patience``: an image stops once its loss fell by less than ``tol`` (relative) in
      ``patience`` iterations in a row (``tol`` 0: never stops early).
    """

    name: str
    align_corners: bool
    grad_weight: float
    search_weight: float
    combine_upsampled: bool
    search_score: str
    search_noise: bool
    smooth: str
    l1_decay: bool
    decay_rule: str
    warm_start: bool
    alpha0: float
    alpha_scales: bool
    take_last_step: bool
    reuse_direction: bool = False
    decay: float = 0.2
    max_trials: int = 0
    tol: float = 0.0
    patience: int = 2
    lookahead: bool = False
    grow: float = 1.25
    lookahead_decay: float = 0.1
    lookahead_noise: str = "run"


_NETREVEAL = {
    "name": "netreveal",
    "align_corners": False,
    "combine_upsampled": False,
    "search_score": "path",
    "search_noise": False,
    "l1_decay": True,
    "decay_rule": "after-step",
    "warm_start": True,
    "alpha0": 1000.0,
    "alpha_scales": True,
    "take_last_step": False,
}

_SETTINGS: dict[tuple[str, str], Variant] = {
    # zhongangqi/IGOS: one deletion mask, line search on f(Phi(M)) from step 200.
    ("igos", "reference"): Variant(
        name="reference", align_corners=True, grad_weight=1.0, search_weight=1.0,
        combine_upsampled=False, search_score="point", search_noise=False, smooth="tv",
        l1_decay=True, decay_rule="before-step", warm_start=False, alpha0=200.0,
        alpha_scales=False, take_last_step=True,
    ),
    # khorrams/IGOS_pp: half the sum of four terms in the gradient, their plain sum (with noise) in
    # the line search from step 1000, the half-and-half bilateral TV, no L1 decay.
    ("igos++", "reference"): Variant(
        name="reference", align_corners=True, grad_weight=0.5, search_weight=1.0,
        combine_upsampled=True, search_score="path", search_noise=True,
        smooth="reference-bilateral", l1_decay=False, decay_rule="before-step",
        warm_start=False, alpha0=1000.0, alpha_scales=False, take_last_step=True,
    ),
    # The reference loop with an early stop (its search trials are single images: cheap already).
    ("igos", "fast"): Variant(
        name="fast", align_corners=True, grad_weight=1.0, search_weight=1.0,
        combine_upsampled=False, search_score="point", search_noise=False, smooth="tv",
        l1_decay=True, decay_rule="before-step", warm_start=False, alpha0=200.0,
        alpha_scales=False, take_last_step=False, tol=1e-3, patience=2,
    ),
    # The reference objective, direction and regularisers; each trial scored by the next
    # direction pass (look-ahead; without it: a search on the direction's own path scores and
    # noise, warm-started, at most 4 trials); early stop.
    ("igos++", "fast"): Variant(
        name="fast", align_corners=True, grad_weight=0.5, search_weight=1.0,
        combine_upsampled=True, search_score="path", search_noise=False,
        smooth="reference-bilateral", l1_decay=False, decay_rule="before-step",
        warm_start=True, alpha0=1000.0, alpha_scales=False, take_last_step=False,
        reuse_direction=True, decay=0.5, max_trials=4, tol=1e-3, patience=2, lookahead=True,
    ),
    ("igos", "netreveal"): Variant(grad_weight=1.0, search_weight=1.0, smooth="tv", **_NETREVEAL),
    ("igos++", "netreveal"): Variant(
        grad_weight=0.25, search_weight=0.25, smooth="bilateral", **_NETREVEAL
    ),
}


def variant_for(method: str, name: str) -> Variant:
    """The settings of ``method`` ("igos" | "igos++") under variant ``name``."""
    if name not in VARIANTS:
        raise NetrevealError(f"unknown I-GOS variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return _SETTINGS[(method, name)]
