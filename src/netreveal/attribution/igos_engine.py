"""The optimisation engine shared by I-GOS and iGOS++: objective, descent direction, step rules.

Parameters are a stack of low-resolution masks per image, ``P`` (B, n, h, w) in [0, 1]:
one deletion mask for I-GOS, a deletion and an insertion mask for iGOS++. The *output mask*
(1 = unimportant) is the deletion mask for I-GOS and the product of the two for iGOS++.

Objective per image (what the line search evaluates, noise free)::

    I-GOS:   S_del(M) + l1 * mean|1-M| + l2 * TV(M)
    iGOS++:  1/4 [S_del(Md) + (1 - S_ins(Mi)) + S_del(Md*Mi) + (1 - S_ins(Md*Mi))]
             + l1 * mean|1-Md*Mi| + l2 * BTV(Md*Mi)

where ``S`` is the path score of :mod:`netreveal.attribution.igos_paths` (mean target probability
along the straight path from mask 0 to the mask). Its gradient is the integrated gradient, which
is the descent direction (computed with noisy path images), plus the closed-form regulariser
gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from netreveal.attribution.igos_paths import PathScorer
from netreveal.attribution.igos_reg import (
    BilateralTV,
    Upsampler,
    l1_grad,
    l1_term,
    tv_grad,
    tv_term,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Objective:
    """The I-GOS / iGOS++ objective for one batch of images (see the module docstring)."""

    def __init__(
        self,
        method: str,
        scorer: PathScorer,
        upsampler: Upsampler,
        l1: torch.Tensor,
        l2: float,
        sigma: float,
    ):
        self.method = method
        self.scorer = scorer
        self.upsampler = upsampler
        self.l1 = l1  # (B,) per image: lowered when an image's score stalls
        self.l2 = float(l2)
        device = l1.device
        if method == "igos":
            self.n_params = 1
            self.inserts = torch.tensor([False], device=device)
            self.weights = torch.tensor([1.0], device=device)
            self.btv = None
        else:
            self.n_params = 2
            self.inserts = torch.tensor([False, True, False, True], device=device)
            self.weights = torch.full((4,), 0.25, device=device)
            self.btv = BilateralTV(scorer.images, upsampler, sigma)

    # -- masks -------------------------------------------------------------------------------
    def terms(self, params: torch.Tensor) -> torch.Tensor:
        """The masks the data terms are evaluated on, (R, K, h, w)."""
        if self.n_params == 1:
            return params
        combined = params[:, 0] * params[:, 1]
        return torch.stack([params[:, 0], params[:, 1], combined, combined], dim=1)

    def output(self, params: torch.Tensor) -> torch.Tensor:
        """The output mask (R, h, w): 1 = unimportant, 0 = salient."""
        return params[:, 0] if self.n_params == 1 else params[:, 0] * params[:, 1]

    # -- objective ---------------------------------------------------------------------------
    def data_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Combine per-term path scores (R, K) into the data term (R,)."""
        ins = self.inserts.to(scores.dtype)
        return ((scores * (1 - ins) + (1 - scores) * ins) * self.weights).sum(dim=1)

    def reg(self, masks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        smooth = tv_term(masks) if self.btv is None else self.btv.value(masks, rows)
        return self.l1[rows] * l1_term(masks) + self.l2 * smooth

    def reg_grad(self, masks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        smooth = tv_grad(masks) if self.btv is None else self.btv.grad(masks, rows)
        return self.l1[rows].view(-1, 1, 1) * l1_grad(masks) + self.l2 * smooth

    @torch.no_grad()
    def loss(self, params: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free objective (R,) and its data term (R,) for ``params`` of images ``rows``."""
        up = self.upsampler.up(self.terms(params))
        scores, _ = self.scorer.run(up, self.inserts, rows)
        data = self.data_from_scores(scores)
        return data + self.reg(self.output(params), rows), data

    def gradient(self, params: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Descent direction's negative: integrated gradient of the data term plus regulariser
        gradients, with respect to ``params`` (B, n, h, w) of all images."""
        rows = torch.arange(params.shape[0], device=params.device)
        leaf = params.detach().requires_grad_(True)
        with torch.enable_grad():
            terms = self.terms(leaf)
            out = self.output(leaf)
        up = self.upsampler.up(terms.detach())
        _, g_up = self.scorer.run(up, self.inserts, rows, noise=noise, grad=True)
        signs = (1 - 2 * self.inserts.to(g_up.dtype)) * self.weights
        g_terms = self.upsampler.adjoint(g_up) * signs.view(1, -1, 1, 1)
        g_out = self.reg_grad(out.detach(), rows)
        (grad,) = torch.autograd.grad((terms * g_terms).sum() + (out * g_out).sum(), leaf)
        return grad


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Armijo backtracking with one step size per image, projected onto [0, 1].

    For each image, tries ``clamp(P - a*g, 0, 1)`` for ``a = alpha0, alpha0*decay, ...`` (``alpha0``
    a number or one start per image) and
    accepts the first trial with ``loss <= base - c*a*|g|^2``; an image whose step falls below
    ``min_step`` keeps its parameters (step 0), so a step that raises the loss is never taken.
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
    while active.numel():
        trial = (params[active] - alphas[active].view(shape) * grad[active]).clamp(0, 1)
        loss, aux = loss_fn(trial, active)
        ok = loss <= base_loss[active] - alphas[active] * slope[active]
        done = active[ok]
        new_params[done], new_loss[done], new_aux[done] = trial[ok], loss[ok], aux[ok]
        taken[done] = alphas[done]
        rest = active[~ok]
        alphas[rest] *= decay
        active = rest[alphas[rest] >= min_step]
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
