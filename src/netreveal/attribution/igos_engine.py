"""The optimisation engine shared by I-GOS and iGOS++: objective, descent direction, step rules.

Parameters are a stack of low-resolution masks per image, ``P`` (B, n, h, w) in [0, 1]:
one deletion mask for I-GOS, a deletion and an insertion mask for iGOS++. The *output mask*
(1 = unimportant) is the deletion mask for I-GOS and the product of the two for iGOS++.

Data terms (``S`` is the path score of :mod:`netreveal.attribution.igos_paths`, the mean target
probability along the straight path from mask 0 to the mask; ``up`` the bilinear upsampling)::

    I-GOS:   S_del(up M)
    iGOS++:  S_del(up Md), 1 - S_ins(up Mi), S_del(C), 1 - S_ins(C)
             with C = up(Md) * up(Mi) (reference) or up(Md * Mi) (netreveal)

The descent direction is ``grad_weight`` times the sum of the data terms' integrated gradients
(computed on noisy path images) plus the regularisers' closed-form gradients; the line search
compares ``search_weight`` times the sum of the data terms plus the regularisers::

    reg = l1 * mean|1 - out| + l2 * smooth(out)

with ``smooth`` the TV (I-GOS) or a bilateral TV (iGOS++). The I-GOS reference scores f(Phi(M))
(the masked image alone, no path) in its line search instead. :mod:`netreveal.attribution.igos_variants`
holds the two settings.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from netreveal.attribution.igos_paths import PathScorer
from netreveal.attribution.igos_reg import (
    BilateralTV,
    ReferenceBilateralTV,
    Upsampler,
    l1_grad,
    l1_term,
    tv_grad,
    tv_term,
)
from netreveal.attribution.igos_variants import Variant

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Objective:
    """The I-GOS / iGOS++ objective for one batch of images (see the module docstring)."""

    def __init__(
        self,
        method: str,
        variant: Variant,
        scorer: PathScorer,
        upsampler: Upsampler,
        l1: torch.Tensor,
        l2: float,
        sigma: float,
        std: torch.Tensor,
    ):
        self.method = method
        self.variant = variant
        self.scorer = scorer
        self.upsampler = upsampler
        self.l1 = l1  # (B,) per image: lowered when an image's score stalls
        self.l2 = float(l2)
        device = l1.device
        if method == "igos":
            self.n_params = 1
            self.inserts = torch.tensor([False], device=device)
        else:
            self.n_params = 2
            self.inserts = torch.tensor([False, True, False, True], device=device)
        if variant.smooth == "bilateral":
            self.smooth = BilateralTV(scorer.images, upsampler, sigma)
        elif variant.smooth == "reference-bilateral":
            self.smooth = ReferenceBilateralTV(scorer.images, std, upsampler, sigma)
        else:
            self.smooth = None

    # -- masks -------------------------------------------------------------------------------
    def up_terms(self, params: torch.Tensor) -> torch.Tensor:
        """The upsampled masks the data terms are evaluated on, (R, K, H, W); differentiable."""
        up = self.upsampler.up
        if self.n_params == 1:
            return up(params)
        if self.variant.combine_upsampled:
            up_del, up_ins = up(params[:, 0]), up(params[:, 1])
            combined = up_del * up_ins
            return torch.stack([up_del, up_ins, combined, combined], dim=1)
        combined = params[:, 0] * params[:, 1]
        return up(torch.stack([params[:, 0], params[:, 1], combined, combined], dim=1))

    def output(self, params: torch.Tensor) -> torch.Tensor:
        """The output mask (R, h, w): 1 = unimportant, 0 = salient."""
        return params[:, 0] if self.n_params == 1 else params[:, 0] * params[:, 1]

    # -- objective ---------------------------------------------------------------------------
    def data_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Combine per-term path scores (R, K) into the line search's data term (R,)."""
        ins = self.inserts.to(scores.dtype)
        return (scores * (1 - ins) + (1 - scores) * ins).sum(dim=1) * self.variant.search_weight

    def reg(self, masks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        smooth = tv_term(masks) if self.smooth is None else self.smooth.value(masks, rows)
        return self.l1[rows] * l1_term(masks) + self.l2 * smooth

    def reg_grad(self, masks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        smooth = tv_grad(masks) if self.smooth is None else self.smooth.grad(masks, rows)
        return self.l1[rows].view(-1, 1, 1) * l1_grad(masks) + self.l2 * smooth

    @torch.no_grad()
    def loss(
        self, params: torch.Tensor, rows: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The line search's objective (R,) and its data term (R,) for ``params`` of images
        ``rows``; ``noise`` (K, N, C, H, W) is added to the path images (None: noise free)."""
        out = self.output(params)
        if self.variant.search_score == "point":
            data = self.scorer.probs(self.upsampler.up(out), insert=False, rows=rows)
        else:
            scores, _ = self.scorer.run(self.up_terms(params), self.inserts, rows, noise=noise)
            data = self.data_from_scores(scores)
        return data + self.reg(out, rows), data

    def gradient(
        self, params: torch.Tensor, noise: torch.Tensor | None, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Descent direction's negative: ``grad_weight`` x the data terms' integrated gradients
        plus the regulariser gradients, with respect to ``params`` (R, n, h, w) of images ``rows``
        (default: all images in order), and the path scores (R, K) its forward passes computed
        (the data terms at ``params`` under ``noise``)."""
        if rows is None:
            rows = torch.arange(params.shape[0], device=params.device)
        leaf = params.detach().requires_grad_(True)
        with torch.enable_grad():
            terms = self.up_terms(leaf)
            out = self.output(leaf)
        scores, g_up = self.scorer.run(terms.detach(), self.inserts, rows, noise=noise, grad=True)
        signs = (1 - 2 * self.inserts.to(g_up.dtype)) * self.variant.grad_weight
        g_terms = g_up * signs.view(1, -1, 1, 1)
        g_out = self.reg_grad(out.detach(), rows)
        (grad,) = torch.autograd.grad((terms * g_terms).sum() + (out * g_out).sum(), leaf)
        return grad, scores


def stalled_images(
    rule: str,
    it: int,
    iterations: int,
    full_probs: torch.Tensor,
    scores: torch.Tensor,
) -> tuple[torch.Tensor, float] | None:
    """Which images get a lower L1 weight after iteration ``it``, and the divisor (or None).

    Checked after iterations ``iterations // 2`` (divide by 10 when the deletion score moved by at
    most 1e-3 from the full-image probability) and ``int(iterations / 1.25)`` (by 5, 1e-2), only
    when there are more than 3 iterations. ``scores`` (B, iterations) holds the deletion score of
    the output mask after each iteration. Rule ``"after-step"`` judges the mask after iteration
    ``it``; ``"before-step"`` (the I-GOS code) the mask iteration ``it - 1`` started from.
    """
    half, late = iterations // 2, int(iterations / 1.25)
    if iterations <= 3 or it not in (half, late):
        return None
    tol, divisor = (1e-3, 10.0) if it == half else (1e-2, 5.0)
    # "before-step": iteration it - 1 started from the output of iteration it - 2 (it >= 2 here)
    score = scores[:, it] if rule == "after-step" else scores[:, it - 2]
    return (full_probs - score).abs() <= tol, divisor


@torch.no_grad()
def line_search(
    params: torch.Tensor,
    grad: torch.Tensor,
    loss_fn: LossFn,
    base_loss: torch.Tensor,
    base_aux: torch.Tensor,
    alpha0: float | torch.Tensor,
    c: float = 1e-4,
    decay: float = 0.2,
    min_step: float = 1e-5,
    take_last: bool = False,
    max_trials: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Armijo backtracking with one step size per image, projected onto [0, 1].

    For each image, tries ``clamp(P - a*g, 0, 1)`` for ``a = alpha0, alpha0*decay, ...`` (``alpha0``
    a number or one start per image) and
    accepts the first trial with ``loss <= base - c*a*|g|^2``. When the step falls below
    ``min_step``, an image keeps its parameters (step 0), so a step that raises the loss is never
    taken; with ``take_last`` (the reference code) it takes that first step below ``min_step``
    whatever its loss. With ``max_trials`` > 0 an image keeps its parameters after that many
    rejected trials.
    Only images still searching are evaluated, all of them in one batched call per trial.
    ``loss_fn(trial_params, rows) -> (loss, aux)`` with ``aux`` (R, ...) carried along.
    Returns the new params, loss, aux and the step taken per image (0 = none).
    """
    n = params.shape[0]
    shape = (-1,) + (1,) * (params.dim() - 1)
    alphas = torch.as_tensor(alpha0, device=params.device, dtype=params.dtype).expand(n).clone()
    slope = c * grad.flatten(1).square().sum(dim=1)
    new_params, new_loss, new_aux = params.clone(), base_loss.clone(), base_aux.clone()
    taken = torch.zeros_like(alphas)
    active = torch.arange(n, device=params.device)
    trials = 0
    while active.numel():
        trials += 1
        trial = (params[active] - alphas[active].view(shape) * grad[active]).clamp(0, 1)
        loss, aux = loss_fn(trial, active)
        ok = loss <= base_loss[active] - alphas[active] * slope[active]
        if take_last:
            ok = ok | (alphas[active] < min_step)
        done = active[ok]
        new_params[done], new_loss[done], new_aux[done] = trial[ok], loss[ok], aux[ok]
        taken[done] = alphas[done]
        rest = active[~ok]
        alphas[rest] *= decay
        active = rest if take_last else rest[alphas[rest] >= min_step]
        if max_trials and trials >= max_trials:
            break
    return new_params, new_loss, new_aux, taken


class Nesterov:
    """Nesterov momentum, fixed step a: theta = P - a*g, P = theta + i/(i+3) (theta - prev)."""

    def __init__(self, params: torch.Tensor, step: float):
        self.prev = params.clone()
        self.step = float(step)
        self.iteration = 0

    @torch.no_grad()
    def __call__(self, params: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        theta = (params - self.step * grad).clamp(0, 1)
        momentum = self.iteration / (self.iteration + 3)
        out = (theta + momentum * (theta - self.prev)).clamp(0, 1)
        self.prev = theta
        self.iteration += 1
        return out
