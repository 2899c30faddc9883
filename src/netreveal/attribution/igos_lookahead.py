"""The look-ahead step rule of the ``fast`` iGOS++ loop: a trial is scored by the next direction.

Each iteration runs one integrated-gradient pass, at the trial masks ``Q = clamp(P - a*g, 0, 1)``
proposed from the accepted masks ``P`` and their direction ``g``. That pass gives the trial's loss
(its path scores plus the regularisers) and its direction at once. The trial is accepted when
``loss(Q) <= loss(P) - c*a*|g|^2`` (Armijo, both losses on noisy paths, as the reference scores
its trials on noisy paths); then ``P = Q``, ``g`` becomes the new direction
and the step grows by ``grow`` (up to ``alpha0``). A rejected trial keeps ``P`` and ``g`` and
shrinks the step by ``decay``. So an iteration costs one gradient pass and no separate line-search
forward passes; a rejected trial costs a pass whose direction is discarded.

The loss a trial must beat was computed in an earlier pass. With ``noise_once`` (the ``fast``
default) every pass uses the run's one noise table, so both losses see the same noisy path
images and the test compares the masks alone; with a new table per pass a trial can also be
rejected, or accepted, by the difference between two noise draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from netreveal.attribution.igos_engine import Objective


def lookahead_loop(
    objective: Objective,
    params: torch.Tensor,
    iterations: int,
    noise_table: Callable[[], torch.Tensor | None],
    record,
    stopper,
    alpha0: float,
    c: float,
    decay: float,
    grow: float,
    min_step: float,
    noise_once: bool = True,
    progress: Callable[[range], range] = lambda r: r,
) -> torch.Tensor:
    """Run the look-ahead loop on ``params`` (B, n, h, w) in place; returns the accepted masks.

    ``noise_table()`` draws path noise: once for the run with ``noise_once``, else once per
    iteration; ``record`` / ``stopper`` are the loop's curves and early stop (see
    :mod:`netreveal.attribution.igos`)."""
    n = params.shape[0]
    device = params.device
    scorer = objective.scorer
    base = torch.zeros(n, device=device)  # loss at the accepted masks
    direction = torch.zeros_like(params)
    alphas = torch.full((n,), float(alpha0), device=device)
    trial = params.clone()
    pending = torch.zeros(n, dtype=torch.bool, device=device)  # a trial awaits its verdict
    shape = (-1,) + (1,) * (params.dim() - 1)
    table = noise_table() if noise_once else None
    for it in progress(range(iterations)):
        if not noise_once:
            table = noise_table()
        active = stopper.active()
        if active.numel() == 0:
            record.carry(it, active)
            continue
        point = trial[active]
        grad, scores = objective.gradient(point, table, active)
        with torch.no_grad():
            loss = objective.data_from_scores(scores) + objective.reg(objective.output(point), active)
            was = pending[active]
            slope = c * direction[active].flatten(1).square().sum(dim=1)
            ok = ~was | (loss <= base[active] - alphas[active] * slope)
            before = torch.where(was, base[active], loss)
            taken = torch.where(was & ok, alphas[active], torch.zeros_like(loss))
            acc = active[ok]
            params[acc], base[acc], direction[acc] = point[ok], loss[ok], grad[ok]
            grown = (alphas[active] * torch.where(was & ok, grow, 1.0)).clamp(max=alpha0)
            alphas[active] = torch.where(ok, grown, alphas[active] * decay)
            trial[active] = (
                params[active] - alphas[active].view(shape) * direction[active]
            ).clamp(0, 1)
            pending[active] = alphas[active] >= min_step
            out_up = objective.upsampler.up(objective.output(params[active]))
            dels = scorer.probs(out_up, insert=False, rows=active)
            ins = scorer.probs(out_up, insert=True, rows=active) if objective.n_params == 2 else None
            record.store(it, active, base[active], dels, ins, taken)
            # converged: an accepted step that lowered the loss by less than tol, or a step fallen
            # below the minimum; a first pass has nothing to compare, a rejected trial says nothing
            after = torch.where(pending[active], base[active], before)
            undecided = ~was | (~ok & pending[active])
            stopper.update(active, before, after, undecided)
    return params
