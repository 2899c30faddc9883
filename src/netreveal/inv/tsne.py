"""Exact t-SNE for many small point sets at once, in torch.

Why not ``sklearn.manifold.TSNE``: INV embeds one point set per (image, layer) — a few hundred
feature maps each, dozens of sets per batch. scikit-learn solves one set at a time, and for sets
this small its cost is dominated by per-iteration overhead (Python loop over points in the exact
method, tree building in Barnes-Hut), so explaining one image with nine layers takes seconds.
Here every set of a batch is padded to a common size and optimised together, and the per-pair work
of an iteration runs as one fused pass over the pairs (compiled once per machine, see
:mod:`netreveal.inv.kernels`; an eager fallback with batched matrix products needs no compiler).

The algorithm is scikit-learn's ``TSNE(method="exact")`` (version 1.x), step for step:
- squared Euclidean input distances (float32), conditional probabilities calibrated per point by
  the same binary search on beta (start 1, doubling/halving until bracketed, then bisection; at most
  100 steps, tolerance 1e-5 on the entropy), symmetrised p_ij = (p_j|i + p_i|j) / sum, floored at
  the float64 machine epsilon;
- Student-t (one degree of freedom) similarities in 2-D, gradient
  4 sum_j (p_ij - q_ij) w_ij (y_i - y_j);
- initialisation by PCA scaled so the first coordinate has standard deviation 1e-4 (or random
  1e-4 N(0, 1));
- gradient descent with momentum 0.5 and early exaggeration 12 for the first 250 iterations, then
  momentum 0.8 without exaggeration up to 1000 iterations in total; per-parameter gains (+0.2 when
  the gradient changes sign against the update, x0.8 otherwise, floor 0.01); learning rate "auto" =
  max(n / early_exaggeration / 4, 50); every 50 iterations the KL divergence and gradient norm are
  checked and a set stops when it made no progress for ``n_iter_without_progress`` iterations (250
  during exaggeration) or its gradient norm is at most 1e-7. Each set follows this schedule on its
  own (stopped sets are frozen while the others go on).
Numerics differ only by floating-point rounding (float32 optimisation as in scikit-learn, float64
calibration). The one deliberate difference: the perplexity is capped at (n - 1) / 3 for small sets
(see :func:`effective_perplexity`), where scikit-learn would refuse (perplexity >= n) or calibrate
nearly uniform neighbourhoods.

This exact method is INV's default. ``TsneConfig(method="reference")`` runs instead what the INV
paper's notebook runs: scikit-learn's Barnes-Hut ``TSNE`` with its default parameters, one set at a
time (:mod:`netreveal.inv.tsne_reference`); :func:`embed_sets` picks the one a config asks for.

A set's result does not depend on the other sets of the batch: padding contributes exact zeros and
each set's sums run over its points in the same order whatever the padded size (padding to
multiples of 16).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from netreveal.errors import NetrevealError
from netreveal.inv.kernels import KERNELS, step_eager, step_kernel

MACHINE_EPSILON = float(np.finfo(np.float64).eps)
# The calibration constants are single-precision floats in scikit-learn's implementation.
PERPLEXITY_TOLERANCE = float(np.float32(1e-5))
EMPTY_ROW_SUM = float(np.float32(1e-8))
CALIBRATION_STEPS = 100
CHECK_EVERY = 50
_FAR = 1e300
PAD = 16
# padded pairs per group: 2**21 float32 probabilities (8 MB) stay in the last-level cache
GROUP_PAIRS = 1 << 21
INITS = ("pca", "random")
METHODS = ("exact", "reference")  # this module's exact t-SNE, or the notebook's scikit-learn Barnes-Hut


@dataclass(frozen=True)
class TsneConfig:
    """Settings of the exact t-SNE; the defaults are those of scikit-learn's ``TSNE``.

    ``method``: ``exact`` (default: this module, batched over sets) or ``reference`` (scikit-learn's
    Barnes-Hut ``TSNE`` with the INV notebook's parameters, see
    :mod:`netreveal.inv.tsne_reference`; the other settings apply to ``exact`` only).
    ``kernel`` picks the implementation of an iteration (same algorithm): ``aot`` (fused, compiled
    once per machine and cached), ``compiled`` (fused, ``torch.compile`` in each process),
    ``eager`` (batched matrix products, no compiler) or ``auto`` (the first of these that works on
    the CPU; eager on other devices). See :mod:`netreveal.inv.kernels`.
    """

    perplexity: float = 30.0
    early_exaggeration: float = 12.0
    learning_rate: float | str = "auto"
    max_iter: int = 1000
    exaggeration_iter: int = 250
    n_iter_without_progress: int = 300
    min_grad_norm: float = 1e-7
    min_gain: float = 0.01
    momentum: tuple[float, float] = (0.5, 0.8)
    init: str = "pca"
    kernel: str = "auto"
    method: str = "exact"

    def validate(self) -> None:
        """Raise :class:`NetrevealError` for settings outside their domain."""
        if self.method not in METHODS:
            raise NetrevealError(
                f"unknown t-SNE method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.perplexity <= 0:
            raise NetrevealError(f"t-SNE perplexity must be positive, got {self.perplexity}")
        if self.max_iter < 1 or self.exaggeration_iter < 0:
            raise NetrevealError("t-SNE needs max_iter >= 1 and exaggeration_iter >= 0")
        if self.early_exaggeration <= 0:
            raise NetrevealError("t-SNE early_exaggeration must be positive")
        if not (
            self.learning_rate == "auto"
            or (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0)
        ):
            raise NetrevealError(
                f"t-SNE learning_rate must be 'auto' or positive, got {self.learning_rate!r}"
            )
        if self.init not in INITS:
            raise NetrevealError(
                f"unknown t-SNE init {self.init!r}; choose one of {', '.join(INITS)}"
            )
        if self.kernel not in KERNELS:
            raise NetrevealError(
                f"unknown t-SNE kernel {self.kernel!r}; choose one of {', '.join(KERNELS)}"
            )


def effective_perplexity(perplexity: float, n: int) -> float:
    """The perplexity used for a set of ``n`` points: ``min(perplexity, max(1, (n - 1) / 3))``.

    For n > 3 * perplexity + 1 (the usual case: a VGG16 layer keeps 100-300 maps) this is the given
    perplexity, as in scikit-learn. Smaller sets get the perplexity whose Barnes-Hut neighbourhood
    (3 * perplexity points) covers all other points, instead of an error (perplexity >= n) or a
    nearly uniform calibration.
    """
    return float(min(perplexity, max(1.0, (n - 1) / 3.0)))


def learning_rate_for(config: TsneConfig, n: int) -> float:
    """Learning rate of a set of ``n`` points ("auto": max(n / early_exaggeration / 4, 50))."""
    if config.learning_rate == "auto":
        return max(n / config.early_exaggeration / 4.0, 50.0)
    return float(config.learning_rate)


def squared_distances(points: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, n) in float64 of points (n, d); exact zero diagonal."""
    x = points.to(torch.float64)
    sq = (x * x).sum(dim=1)
    d = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d.fill_diagonal_(0.0)
    return d


def calibrate(sqdist: torch.Tensor, valid: torch.Tensor, perplexity: torch.Tensor) -> torch.Tensor:
    """Conditional probabilities p_j|i (R, M) by binary search on each row's precision (float64).

    ``sqdist`` (R, M) squared distances, ``valid`` (R, M) which entries are neighbours (not the
    point itself, not padding), ``perplexity`` (R,) desired perplexity per row. Rows stop as soon
    as their entropy is within 1e-5 of log(perplexity) (at most 100 steps), exactly as
    scikit-learn's ``_binary_search_perplexity``; the returned row is the one evaluated at the
    final beta.
    """
    rows = sqdist.shape[0]
    # non-neighbours get a huge distance: exp(-d * beta) is exactly 0 there (beta >= 2**-100)
    dist = torch.where(
        valid, sqdist.to(torch.float64), torch.full_like(sqdist, _FAR, dtype=torch.float64)
    )
    target = torch.log(perplexity.to(torch.float32).to(torch.float64))
    beta = torch.ones(rows, dtype=torch.float64, device=dist.device)
    final = beta.clone()
    lo = torch.full_like(beta, -math.inf)
    hi = torch.full_like(beta, math.inf)
    done = torch.zeros(rows, dtype=torch.bool, device=dist.device)
    active = torch.arange(rows, device=dist.device)  # the working set: rows not yet dropped
    d_act, t_act = dist, target
    for _ in range(CALIBRATION_STEPS):
        b = beta[active]
        e = torch.mul(d_act, -b[:, None]).exp_()
        s = e.sum(dim=1)
        s = torch.where(s == 0, torch.full_like(s, EMPTY_ROW_SUM), s)
        entropy = torch.log(s) + b * torch.linalg.vecdot(d_act, e) / s
        diff = entropy - t_act
        live = ~done[active]
        final[active] = torch.where(live, b, final[active])
        converged = diff.abs() <= PERPLEXITY_TOLERANCE
        move = live & ~converged
        up = diff > 0
        lo_a, hi_a = lo[active], hi[active]
        grow = torch.where(torch.isinf(hi_a), b * 2.0, (b + hi_a) / 2.0)
        shrink = torch.where(torch.isinf(lo_a), b / 2.0, (b + lo_a) / 2.0)
        beta[active] = torch.where(move, torch.where(up, grow, shrink), b)
        lo[active] = torch.where(move & up, b, lo_a)
        hi[active] = torch.where(move & ~up, b, hi_a)
        done[active] = done[active] | converged
        left = ~done[active]
        n_left = int(left.sum())
        if n_left == 0:
            break
        if n_left <= 0.75 * active.numel():  # shrink the working set once enough rows finished
            active, d_act, t_act = active[left], d_act[left], t_act[left]
    e = torch.mul(dist, -final[:, None]).exp_()
    s = e.sum(dim=1, keepdim=True)
    s = torch.where(s == 0, torch.full_like(s, EMPTY_ROW_SUM), s)
    return e / s


def joint_probabilities(sqdist: torch.Tensor, perplexity: float) -> torch.Tensor:
    """Symmetric joint probabilities p_ij (n, n) float64 of one set, as in scikit-learn's exact
    method."""
    n = sqdist.shape[0]
    valid = ~torch.eye(n, dtype=torch.bool, device=sqdist.device)
    cond = calibrate(
        sqdist.to(torch.float32), valid, torch.full((n,), perplexity, dtype=torch.float64)
    )
    return _symmetrise(cond, valid)


def _symmetrise(cond: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """p_ij = (p_j|i + p_i|j) / their sum over the set, floored at the machine epsilon and 0 off
    ``valid``; for one set (n, n) or a batch of padded sets (B, M, M)."""
    p = cond + cond.transpose(-2, -1)
    p = p / p.sum(dim=(-2, -1), keepdim=True).clamp_min(MACHINE_EPSILON)
    return torch.where(valid, p.clamp_min(MACHINE_EPSILON), torch.zeros_like(p))


def pca_init(points: torch.Tensor) -> torch.Tensor:
    """PCA initialisation (n, 2) float32: the first two principal component scores, signs fixed as
    scikit-learn's PCA does (largest loading positive), scaled so the first has std 1e-4."""
    x = points.to(torch.float64)
    n = x.shape[0]
    if x.shape[1] < 2:
        x = torch.cat([x, x.new_zeros(n, 2 - x.shape[1])], dim=1)
    x = x - x.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    u, s, vh = u[:, :2], s[:2], vh[:2]
    pick = vh.abs().argmax(dim=1)
    sign = torch.sign(vh.gather(1, pick[:, None]).squeeze(1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    scores = (u * s * sign).to(torch.float32)
    if scores.shape[1] < 2:
        scores = torch.cat([scores, scores.new_zeros(n, 2 - scores.shape[1])], dim=1)
    std = scores[:, 0].std(unbiased=False)
    scale = 1e-4 / std if float(std) > 0 else torch.zeros_like(std)
    return scores * scale


def random_init(n: int, seed: int, device=None) -> torch.Tensor:
    """Random initialisation 1e-4 * N(0, 1), (n, 2) float32, from a generator seeded by ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    return (
        (1e-4 * torch.randn(n, 2, generator=gen, dtype=torch.float64)).to(torch.float32).to(device)
    )


def _kl(P, Y, nmask, exag, plogp, psum):
    """KL divergence (B,) of every set with the exaggerated P, as scikit-learn reports it.

    Only compared against its own earlier values (the no-progress stop), so float32 pair terms
    summed in float64 are enough.
    """
    yt = Y.transpose(1, 2)
    sq = (yt * yt).sum(dim=-1, keepdim=True)
    ones = torch.ones_like(sq)
    x = torch.bmm(
        torch.cat([yt, sq, ones], dim=-1),
        torch.cat([-2.0 * yt, ones, 1.0 + sq], dim=-1).transpose(1, 2),
    ).clamp_min_(1.0)
    cross = (P * torch.log(x)).sum(dim=(1, 2), dtype=torch.float64)  # P is 0 off the real pairs
    w = x.reciprocal_().mul_(nmask[:, None, :])
    w.diagonal(dim1=1, dim2=2).zero_()
    z = (w.sum(dim=-1, dtype=torch.float64) * nmask).sum(dim=-1)
    e = exag.to(torch.float64)
    # sum_ij P' log(P' / Q) with P' = e P and Q = w / z
    return e * (plogp + torch.log(e) * psum + cross + torch.log(z) * psum)


@dataclass
class _Group:
    index: list[int]
    P: torch.Tensor
    Y: torch.Tensor
    update: torch.Tensor
    gains: torch.Tensor
    nmask: torch.Tensor
    lr: torch.Tensor
    plogp: torch.Tensor
    psum: torch.Tensor
    real: torch.Tensor


def _groups(
    sizes: Sequence[int], waste: float = 1.35, pairs: int = GROUP_PAIRS, same_pad: bool = False
) -> list[list[int]]:
    """Split sets (largest first) into groups of similar padded size (pair count within ``waste``
    x of the largest) and at most ``pairs`` padded pairs (a group's P stays in cache while it runs
    all its iterations; one set alone may exceed it). ``same_pad`` groups only sets of equal padded
    size (the eager kernel's matrix products are not exactly invariant to padding)."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    groups: list[list[int]] = []
    for i in order:
        pad = _padded(sizes[i])
        if groups:
            head = _padded(sizes[groups[-1][0]])
            fits = (head == pad) if same_pad else head**2 <= waste * pad**2
            if fits and (len(groups[-1]) + 1) * head**2 <= pairs:
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def _padded(n: int) -> int:
    return max(PAD, -(-n // PAD) * PAD)


def exact_tsne(
    points: Sequence[torch.Tensor],
    config: TsneConfig = TsneConfig(),
    seeds: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Embed each point set (n_i, d_i) in 2-D with exact t-SNE; all sets are optimised together.

    Returns one float32 (n_i, 2) tensor per set, on the sets' device. ``seeds`` (one per set) only
    matter with ``init="random"``. Sets of fewer than 2 points are returned as zeros.
    """
    config.validate()
    sqdist = [squared_distances(p).to(torch.float32) for p in points]
    if config.init == "pca":
        inits = [pca_init(p) if p.shape[0] >= 2 else p.new_zeros(p.shape[0], 2) for p in points]
    else:
        seeds = list(seeds) if seeds is not None else list(range(len(points)))
        inits = [random_init(p.shape[0], s, p.device) for p, s in zip(points, seeds)]
    return exact_tsne_from_distances(sqdist, inits, config)


def embed_sets(
    points: Sequence[torch.Tensor], config: TsneConfig, seeds: Sequence[int]
) -> list[torch.Tensor]:
    """2-D t-SNE embeddings of point sets by ``config.method``: :func:`exact_tsne` (all sets
    together) or the reference's scikit-learn Barnes-Hut (one set at a time, ``seeds[i]`` as its
    ``random_state``)."""
    config.validate()
    if config.method == "reference":
        from netreveal.inv.tsne_reference import reference_tsne

        return reference_tsne(points, seeds)
    return exact_tsne(points, config, seeds=seeds)


def exact_tsne_from_distances(
    sqdist: Sequence[torch.Tensor], inits: Sequence[torch.Tensor], config: TsneConfig = TsneConfig()
) -> list[torch.Tensor]:
    """Exact t-SNE from squared input distances (n_i, n_i) and initial embeddings (n_i, 2)."""
    config.validate()
    sizes = [int(d.shape[0]) for d in sqdist]
    out: list[torch.Tensor | None] = [None] * len(sizes)
    todo = [i for i, n in enumerate(sizes) if n >= 2]
    for i, n in enumerate(sizes):
        if n < 2:
            out[i] = torch.zeros(n, 2, dtype=torch.float32, device=sqdist[i].device)
    if not todo:
        return out  # type: ignore[return-value]
    device = sqdist[todo[0]].device
    step = step_kernel(config.kernel, device)
    # one group at a time, all its iterations: its pairs stay in cache between iterations
    same_pad = step is step_eager
    for group in _groups([sizes[i] for i in todo], same_pad=same_pad):
        index = [todo[j] for j in group]
        g = _build_group(index, sqdist, inits, sizes, config, device)
        _optimise(g, config, step)
        for row, i in enumerate(g.index):
            out[i] = g.Y[row, :, : sizes[i]].T.contiguous()
    return out  # type: ignore[return-value]


def _build_group(index, sqdist, inits, sizes, config, device) -> _Group:
    # a lone set gets an inert companion: the compiled kernel then never sees a batch of one
    # (which dynamic shapes would specialise and compile again)
    b, m = max(2, len(index)), _padded(max(sizes[i] for i in index))
    dist = torch.zeros(b, m, m, dtype=torch.float32, device=device)
    valid = torch.zeros(b, m, m, dtype=torch.bool, device=device)
    perp = torch.zeros(b, m, dtype=torch.float64, device=device)
    Y = torch.zeros(b, 2, m, dtype=torch.float32, device=device)
    nmask = torch.zeros(b, m, dtype=torch.float32, device=device)
    lr = torch.zeros(b, dtype=torch.float32, device=device)
    for row, i in enumerate(index):
        n = sizes[i]
        dist[row, :n, :n] = sqdist[i].to(device=device, dtype=torch.float32)
        valid[row, :n, :n] = ~torch.eye(n, dtype=torch.bool, device=device)
        perp[row, :n] = effective_perplexity(config.perplexity, n)
        Y[row, :, :n] = inits[i].to(device=device, dtype=torch.float32).T
        nmask[row, :n] = 1.0
        lr[row] = learning_rate_for(config, n)
    real = nmask.bool().reshape(-1)
    cond = torch.zeros(b * m, m, dtype=torch.float64, device=device)
    cond[real] = calibrate(
        dist.reshape(b * m, m)[real], valid.reshape(b * m, m)[real], perp.reshape(-1)[real]
    )
    P = _symmetrise(cond.reshape(b, m, m), valid)
    plogp = torch.where(
        valid, P * torch.log(P.clamp_min(MACHINE_EPSILON)), torch.zeros_like(P)
    ).sum(dim=(1, 2))
    psum = P.sum(dim=(1, 2))
    real = torch.zeros(b, dtype=torch.bool, device=device)
    real[: len(index)] = True
    return _Group(
        index=list(index),
        P=P.to(torch.float32),
        Y=Y,
        update=torch.zeros_like(Y),
        gains=torch.ones_like(Y),
        nmask=nmask,
        lr=lr,
        plogp=plogp,
        psum=psum,
        real=real,
    )


def _optimise(g: _Group, config: TsneConfig, step) -> None:
    """Run the two-phase gradient descent on one group, each set with its own stopping state."""
    explore = min(config.exaggeration_iter, config.max_iter)
    b, dev = g.P.shape[0], g.P.device
    st = {
        "phase1": torch.full((b,), explore > 0, dtype=torch.bool, device=dev),
        "done": ~g.real,
        "best": torch.full((b,), math.inf, dtype=torch.float64, device=dev),
        "best_iter": torch.zeros(b, dtype=torch.long, device=dev),
    }
    m1, m2 = config.momentum
    min_gain = torch.full((b,), config.min_gain, dtype=torch.float32, device=dev)
    phase_of = active_of = None
    for it in range(config.max_iter):
        if it == explore:  # the exploration phase ends for every set still in it
            _end_phase1(g, st, st["phase1"].clone(), it)
        if phase_of is not st["phase1"] or active_of is not st["done"]:  # a set changed state
            phase_of, active_of = st["phase1"], st["done"]
            if bool(active_of.all()):
                return
            exag = torch.where(phase_of, config.early_exaggeration, 1.0).to(torch.float32)
            mom = torch.where(phase_of, m1, m2).to(torch.float32)
            active = ~active_of
        check = (it + 1) % CHECK_EVERY == 0
        if check:
            # during exaggeration no set can stall (its patience is the phase length), so the
            # divergence only matters for the sets in the second phase
            err = (
                _kl(g.P, g.Y, g.nmask, exag, g.plogp, g.psum)
                if not bool(phase_of.all())
                else torch.full_like(st["best"], -math.inf)
            )
        g.Y, g.update, g.gains, norm = step(
            g.P, g.Y, g.update, g.gains, g.nmask, exag, mom, g.lr, active, min_gain
        )
        if check:
            _check(g, st, it, err, norm, config)


def _check(g: _Group, st: dict, it: int, err, norm, config: TsneConfig) -> None:
    done, phase1 = st["done"], st["phase1"]
    live = ~done
    better = live & (err < st["best"])
    st["best"] = torch.where(better, err, st["best"])
    st["best_iter"] = torch.where(better, torch.full_like(st["best_iter"], it), st["best_iter"])
    patience = torch.where(phase1, config.exaggeration_iter, config.n_iter_without_progress)
    stalled = live & ~better & ((it - st["best_iter"]) > patience)
    stop = stalled | (live & (norm.to(torch.float64) <= config.min_grad_norm))
    if bool(stop.any()):
        ending = stop & phase1
        st["done"] = done | (stop & ~phase1)
        if bool(ending.any()):
            _end_phase1(g, st, ending, it + 1)


def _end_phase1(g: _Group, st: dict, which: torch.Tensor, next_it: int) -> None:
    """Sets in ``which`` leave the exaggeration phase; the next one starts fresh at ``next_it``."""
    w = which[:, None, None]
    g.update = torch.where(w, torch.zeros_like(g.update), g.update)
    g.gains = torch.where(w, torch.ones_like(g.gains), g.gains)
    st["phase1"] = st["phase1"] & ~which
    st["best"] = torch.where(which, torch.full_like(st["best"], math.inf), st["best"])
    st["best_iter"] = torch.where(which, torch.full_like(st["best_iter"], next_it), st["best_iter"])
