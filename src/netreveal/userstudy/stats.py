"""The statistics of a user study, each small enough to check by hand.

- :func:`t_interval`: mean and Student-t confidence interval; :func:`clip_interval` limits it to
  the values possible (a mean of 1-5 ratings cannot leave the scale).
- :func:`wilson_interval`: Wilson score interval of a binomial proportion (stays within [0, 1] and
  is not degenerate at 0 or n successes, unlike the Wald interval).
- :func:`signed_rank`: Wilcoxon signed-rank test of paired samples (two-sided; zero differences
  dropped, as Wilcoxon proposed). The p-value comes from the exact null distribution
  (``scipy.stats.wilcoxon(method="exact")``) when there are no tied absolute differences and
  n <= 50; with ties and n <= 50 from all 2^n sign flips of the tied ranks (exact permutation,
  as ``scipy.stats.wilcoxon`` does for n <= 13); otherwise from the normal approximation with tie
  and continuity corrections.
- :func:`rank_sum`: Mann-Whitney U test (``scipy.stats.mannwhitneyu``, two-sided, method "auto":
  exact without ties when both groups are smaller than 8, else the normal approximation with
  tie and continuity corrections).
- :func:`holm`: Holm-Bonferroni adjusted p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

EXACT_MAX_N = 50
PERMUTATION_MAX_N = 50


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sd, low, high): mean ± t_{(1+confidence)/2, n-1} · sd / sqrt(n), sd with n-1.
    NaN where undefined (no values; a single value has no interval)."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def clip_interval(low: float, high: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """(low, high) limited to ``bounds`` = (lowest, highest possible value); NaN stays NaN."""
    lowest, highest = bounds
    return (low if math.isnan(low) else max(low, lowest), high if math.isnan(high) else min(high, highest))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion successes / n: the proportions p that a two-sided
    score test at level 1 - confidence does not reject, |p̂ - p| <= z sqrt(p (1 - p) / n), with
    z = Φ⁻¹((1 + confidence) / 2). (NaN, NaN) when n is 0."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n={n}, got {successes}")
    z2 = float(sps.norm.ppf((1 + confidence) / 2)) ** 2
    p = successes / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2 * p * (1 - p) / n + z2 * z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SignedRank:
    """Result of :func:`signed_rank`. ``n`` counts the non-zero differences; ``statistic`` is
    min(R+, R-); ``effect`` the matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-)."""

    n: int
    r_plus: float
    r_minus: float
    statistic: float
    p: float
    effect: float
    method: str


def signed_rank(x: Sequence[float], y: Sequence[float]) -> SignedRank:
    """Two-sided Wilcoxon signed-rank test of x against y (paired, same length)."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return SignedRank(0, 0.0, 0.0, 0.0, 1.0, 0.0, "no differences")
    ranks = sps.rankdata(np.abs(d))
    r_plus, r_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    statistic = min(r_plus, r_minus)
    effect = (r_plus - r_minus) / (r_plus + r_minus)
    ties = np.unique(np.abs(d)).size < n
    if not ties and n <= EXACT_MAX_N:
        p, method = float(sps.wilcoxon(d, method="exact").pvalue), "exact"
    elif n <= PERMUTATION_MAX_N:
        p, method = _sign_flip_p(ranks, r_plus), "exact permutation"
    else:
        p, method = _normal_p(ranks, r_plus), "normal approximation"
    return SignedRank(n, r_plus, r_minus, statistic, min(p, 1.0), effect, method)


def _sign_flip_p(ranks: np.ndarray, r_plus: float) -> float:
    """Two-sided p of R+ over all 2^n equally likely sign assignments of the (average) ranks.

    Average ranks are multiples of 1/2, so the null distribution of 2 R+ is the coefficient list
    of prod_i (1 + x^(2 r_i)), built by one shift-and-add per rank."""
    weights = np.rint(2 * ranks).astype(np.int64)
    counts = np.zeros(int(weights.sum()) + 1)
    counts[0] = 1.0
    for w in weights:
        counts[w:] = counts[w:] + counts[:counts.size - w].copy()
    observed = round(2 * r_plus)
    total = counts.sum()
    return float(2 * min(counts[observed:].sum(), counts[:observed + 1].sum()) / total)


def _normal_p(ranks: np.ndarray, r_plus: float) -> float:
    n = ranks.size
    _, counts = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(counts**3 - counts)) / 48
    z = (abs(r_plus - n * (n + 1) / 4) - 0.5) / math.sqrt(var)
    return float(2 * sps.norm.sf(max(z, 0.0)))


@dataclass(frozen=True)
class RankSum:
    """Result of :func:`rank_sum`: U of the first group, its p-value, and the common-language
    effect U / (n_x n_y) (probability that a value of x exceeds one of y, ties counted half)."""

    n_x: int
    n_y: int
    u: float
    p: float
    effect: float


def rank_sum(x: Sequence[float], y: Sequence[float]) -> RankSum:
    """Two-sided Mann-Whitney U test of two independent groups (NaN when a group is empty)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0 or y.size == 0:
        return RankSum(x.size, y.size, math.nan, math.nan, math.nan)
    res = sps.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    return RankSum(x.size, y.size, float(res.statistic), float(res.pvalue), float(res.statistic) / (x.size * y.size))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order; NaN entries stay NaN and do not count.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    p = [float(v) for v in pvalues]
    valid = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(valid)
    out = [math.nan] * len(p)
    running = 0.0
    for j, (v, i) in enumerate(valid):
        running = max(running, min(1.0, (m - j) * v))
        out[i] = running
    return out
