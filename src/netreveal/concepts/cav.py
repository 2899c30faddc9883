"""Concept activation vectors: the normal of a linear classifier separating a concept's activations
from a random set's.

Two classifiers:

- ``hinge`` (default): a linear SVM trained by stochastic gradient descent, scikit-learn's
  ``SGDClassifier(loss="hinge", alpha=0.01, max_iter=1000, tol=1e-3)``. These are the settings of
  both reference implementations: tensorflow/tcav's ``CAV.default_hparams`` (``model_type='linear'``)
  and captum's ``DefaultClassifier``. Here its shuffling is seeded (``random_state``); the
  references leave it unseeded.
- ``logistic``: L2-regularised logistic regression (L-BFGS) on activations scaled by their mean norm
  (the CAV direction does not depend on that scale). Smooth and deterministic, it was netreveal's
  classifier before.

``l2`` is the L2 regularisation strength of either (SGDClassifier's ``alpha`` for ``hinge``).

Both train on the same stratified random ``1 - test_fraction`` of each set (:func:`held_out`) and
report their accuracy on the rest; the CAV is the unit normal pointing towards the concept.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from netreveal.errors import NetrevealError

CLASSIFIERS = ("hinge", "logistic")
# the reference implementations' SGDClassifier settings (tensorflow/tcav and captum agree)
REFERENCE_ALPHA = 0.01
HINGE_MAX_ITER = 1000
HINGE_TOL = 1e-3
LOGISTIC_MAX_ITER = 200


def describe_classifier(classifier: str, l2: float = REFERENCE_ALPHA) -> str:
    """One line saying what a CAV classifier computes (for results' params)."""
    if classifier == "hinge":
        return (f"linear SVM by SGD: sklearn SGDClassifier(loss='hinge', alpha={l2:g}, max_iter={HINGE_MAX_ITER}, "
                f"tol={HINGE_TOL:g}) as tensorflow/tcav and captum, seeded shuffling")
    return f"logistic regression (L-BFGS, L2 {l2:g}), activations scaled by their mean norm"


def check_classifier(classifier: str) -> None:
    """Raise :class:`NetrevealError` unless ``classifier`` is one of :data:`CLASSIFIERS`."""
    if classifier not in CLASSIFIERS:
        raise NetrevealError(f"unknown CAV classifier {classifier!r}; choose one of {', '.join(CLASSIFIERS)}")


def held_out(n_positives: int, n_negatives: int, test_fraction: float = 0.33, seed: int = 0) -> torch.Tensor:
    """Which of the ``n_positives + n_negatives`` rows (positives first) are held out for the
    accuracy: a random ``round(test_fraction * n)`` of each set, when that leaves both parts
    non-empty."""
    gen = torch.Generator().manual_seed(int(seed))
    test = torch.zeros(n_positives + n_negatives, dtype=torch.bool)
    for lo, hi in ((0, n_positives), (n_positives, n_positives + n_negatives)):
        k = round((hi - lo) * test_fraction)
        if 0 < k < hi - lo:
            test[lo + torch.randperm(hi - lo, generator=gen)[:k]] = True
    return test


def train_cav(
    positives: torch.Tensor,
    negatives: torch.Tensor,
    l2: float = REFERENCE_ALPHA,
    test_fraction: float = 0.33,
    seed: int = 0,
    classifier: str = "hinge",
) -> tuple[torch.Tensor, float]:
    """A unit CAV (dim,) separating ``positives`` (n, dim) from ``negatives`` (m, dim) with
    ``classifier`` (see the module docstring), and its accuracy on the held-out rows (NaN when
    nothing is held out)."""
    check_classifier(classifier)
    x = torch.cat([positives, negatives]).detach().double().cpu()
    y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).double()
    test = held_out(len(positives), len(negatives), test_fraction, seed)
    fit = _hinge if classifier == "hinge" else _logistic
    w, predict = fit(x, y, test, l2, seed)
    acc = math.nan
    if bool(test.any()):
        acc = float((predict(x[test]) == y[test]).double().mean())
    return (w / w.norm().clamp_min(1e-12)).float().to(positives.device), acc


def _hinge(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, l2: float, seed: int):
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(loss="hinge", alpha=l2, max_iter=HINGE_MAX_ITER, tol=HINGE_TOL,
                          random_state=int(seed) % (2**32))
    model.fit(x[~test].numpy(), y[~test].numpy().astype(np.int64))
    w = torch.from_numpy(model.coef_[0].copy())  # points towards class 1, the concept

    def predict(rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(model.predict(rows.numpy())).double()

    return w, predict


def _logistic(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, l2: float, seed: int):
    scale = x[~test].norm(dim=1).mean().clamp_min(1e-12)  # a scalar: the CAV direction is unchanged
    xs = x / scale
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=LOGISTIC_MAX_ITER, line_search_fn="strong_wolfe")
    train_x, train_y = xs[~test], y[~test]

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(train_x @ w + b, train_y)
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()

    def predict(rows: torch.Tensor) -> torch.Tensor:
        return ((rows / scale) @ w + b > 0).double()

    return w, predict
