"""Analysis of a user study: ratings per method, paired comparisons, forward simulation, backgrounds.

The unit of analysis is the participant: each participant's ratings of a method on a scale are
averaged first (so participants who answered more questions do not weigh more, and the ratings of
one person are not treated as independent), and so are their forward-simulation answers.

- Ratings: per method and scale the mean of the per-participant means with a Student-t confidence
  interval (:func:`~netreveal.userstudy.stats.t_interval`), clipped to the 1-5 scale.
- Method comparisons: per scale, every pair of methods by a two-sided Wilcoxon signed-rank test on
  the per-participant means of the participants who rated both
  (:func:`~netreveal.userstudy.stats.signed_rank`), Holm-Bonferroni adjusted within the scale.
- Forward simulation: per participant the share of correct predictions with explanations (any
  method, and per method) and without; the pooled accuracy (correct / answers) with a Wilson score
  interval (:func:`~netreveal.userstudy.stats.wilson_interval`); "with" against "without"
  by a two-sided Wilcoxon signed-rank test on the per-participant accuracies (paired by
  participant); the per-method tests Holm-adjusted among themselves.
- Backgrounds (when both novices and experts are present): per scale and method a two-sided
  Mann-Whitney U test between the groups' per-participant means, Holm-adjusted within the scale.

Participants failing an attention check are excluded first (:func:`~netreveal.userstudy.design.exclusions`).
When a participant answered the same item twice, the last response counts. Methods seen by fewer
than ``min_participants`` analysed participants are listed by :meth:`Analysis.few_participants`
(their intervals are wide and their tests have little power).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import combinations
from pathlib import Path
from typing import Any

from netreveal.errors import NetrevealError
from netreveal.formatting import fmt
from netreveal.userstudy.design import exclusions
from netreveal.userstudy.records import (
    LIKERT,
    SCALES,
    Participant,
    Question,
    Response,
    write_responses_csv,
)
from netreveal.userstudy.stats import (
    clip_interval,
    holm,
    rank_sum,
    signed_rank,
    t_interval,
    wilson_interval,
)

MIN_PARTICIPANTS = 10  # fewer participants per method: the report warns
RATING_CI = "Student-t interval over per-participant means, clipped to the 1-5 scale"
FORWARD_CI = "Wilson score interval of the pooled accuracy (correct / answers, answers counted as independent)"
PAIR_TEST = "Wilcoxon signed-rank (two-sided) on per-participant means, Holm-Bonferroni within each scale"
FORWARD_TEST = ("Wilcoxon signed-rank (two-sided) on per-participant accuracies with vs without explanations; "
                "per-method tests Holm-Bonferroni adjusted among themselves")
BACKGROUND_TEST = ("Mann-Whitney U (two-sided) on per-participant means, novices vs experts, "
                   "Holm-Bonferroni within each scale")


def _clean(value: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass
class MethodScore(_Dict):
    """Mean rating of one method on one scale over ``n`` participants, with its interval
    (``ci_low``, ``ci_high``: clipped to the rating scale; ``half_width``: t · sd / sqrt(n), before
    clipping)."""

    method: str
    scale: str
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    half_width: float = math.nan


@dataclass
class PairTest(_Dict):
    """Wilcoxon signed-rank comparison of two methods on one scale (``mean_diff`` = a - b over the
    ``n_pairs`` participants who rated both; ``n`` of them differ)."""

    scale: str
    method_a: str
    method_b: str
    n_pairs: int
    mean_a: float
    mean_b: float
    mean_diff: float
    n: int
    r_plus: float
    r_minus: float
    statistic: float
    effect: float
    p: float
    p_holm: float
    p_method: str
    significant: bool


@dataclass
class ForwardAccuracy(_Dict):
    """Forward-simulation accuracy in one condition ("with": ``method`` None pools every method).

    ``accuracy`` is the mean of per-participant accuracies; ``pooled`` is n_correct / n_answers,
    and (``ci_low``, ``ci_high``) its Wilson score interval."""

    condition: str
    method: str | None
    n_participants: int
    n_answers: int
    n_correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    pooled: float


@dataclass
class ForwardTest(_Dict):
    """With vs without explanations (``method`` None: any method), paired by participant."""

    method: str | None
    n_participants: int
    accuracy_with: float
    accuracy_without: float
    mean_diff: float
    statistic: float
    effect: float
    p: float
    p_holm: float
    p_method: str
    significant: bool


@dataclass
class BackgroundTest(_Dict):
    """Novices vs experts on one method and scale (Mann-Whitney U of the novices' means)."""

    scale: str
    method: str
    n_novice: int
    n_expert: int
    mean_novice: float
    mean_expert: float
    u: float
    effect: float
    p: float
    p_holm: float
    significant: bool


@dataclass
class Analysis(_Dict):
    """Everything :func:`analyse` found; ``to_dict`` is JSON-ready, ``write_csv`` the raw data."""

    methods: list[str]
    scales: list[str]
    participants: list[str]
    excluded: list[str]
    confidence: float
    alpha: float
    scores: list[MethodScore]
    pairs: list[PairTest]
    forward: list[ForwardAccuracy]
    forward_tests: list[ForwardTest]
    background: list[BackgroundTest]
    comments: list[tuple[str, str]]
    procedures: dict[str, str]
    provenance: dict[str, Any]
    responses: list[Response] = field(default_factory=list, repr=False)
    participant_records: list[Participant] = field(default_factory=list, repr=False)
    method_participants: dict[str, int] = field(default_factory=dict)
    min_participants: int = MIN_PARTICIPANTS

    def few_participants(self) -> list[tuple[str, int]]:
        """(method, analysed participants who rated it or saw its explanations) for every method
        with fewer than ``min_participants``, in method order."""
        counts = [(m, self.method_participants.get(m, 0)) for m in self.methods]
        return [(m, n) for m, n in counts if n < self.min_participants]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("responses", "participant_records"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = [v.to_dict() if isinstance(v, _Dict) else v for v in value]
            data[f.name] = value
        data["n_responses"] = len(self.responses)
        return _clean(data)

    def score(self, method: str, scale: str) -> MethodScore:
        """The rating summary of ``method`` on ``scale``."""
        for s in self.scores:
            if s.method == method and s.scale == scale:
                return s
        raise NetrevealError(f"no ratings of {method!r} on {scale!r}")

    def pair(self, scale: str, a: str, b: str) -> PairTest:
        """The comparison of methods ``a`` and ``b`` on ``scale`` (either order)."""
        for t in self.pairs:
            if t.scale == scale and {t.method_a, t.method_b} == {a, b}:
                return t
        raise NetrevealError(f"no comparison of {a!r} and {b!r} on {scale!r}")

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Raw data, one row per response (excluded participants flagged, not dropped)."""
        return write_responses_csv(self.responses, path, participants=self.participant_records, excluded=self.excluded)


def _provenance() -> dict[str, Any]:
    """Versions and time of the analysis (without importing torch, which the analysis never needs)."""
    import numpy
    import scipy

    from netreveal import __version__

    return {"versions": {"netreveal": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
                         "python": platform.python_version()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _latest(responses: Iterable[Response]) -> list[Response]:
    """One response per (participant, question, method, scale): the last one given."""
    keep: dict[tuple, Response] = {}
    for r in responses:
        keep[(r.participant, r.question, r.method, r.scale)] = r
    return list(keep.values())


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def analyse(
    responses: Iterable[Response],
    participants: Iterable[Participant] = (),
    *,
    questions: Iterable[Question] | None = None,
    exclude: Iterable[str] | None = None,
    methods: Sequence[str] | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
    min_participants: int = MIN_PARTICIPANTS,
) -> Analysis:
    """Analyse a study's responses (see the module docstring for every procedure).

    ``exclude`` lists participants to leave out; by default those failing an attention check
    (checked against ``questions``, the design, when given). ``methods`` fixes the order of the
    methods (default: sorted names found in the responses). Methods with fewer than
    ``min_participants`` participants are flagged (:meth:`Analysis.few_participants`).
    """
    all_responses = list(responses)
    people = list(participants)
    if not 0 < confidence < 1 or not 0 < alpha < 1:
        raise NetrevealError("confidence and alpha must lie strictly between 0 and 1")
    if min_participants < 0:
        raise NetrevealError("min_participants must not be negative")
    excluded = sorted(set(exclusions(all_responses, questions) if exclude is None else exclude))
    kept = [r for r in _latest(all_responses) if r.participant not in excluded]
    found = sorted({r.method for r in kept if r.method is not None})
    methods = list(methods) if methods is not None else found
    missing = set(found) - set(methods)
    if missing:
        raise NetrevealError(f"responses name methods not listed in methods: {sorted(missing)}")
    analysed = sorted({r.participant for r in kept})

    ratings: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in kept:
        if r.kind == "rating":
            ratings[(r.scale, r.method)][r.participant].append(r.value)
    means = {key: {p: _mean(v) for p, v in per.items()} for key, per in ratings.items()}
    scales = [s for s in SCALES if any((s, m) in means for m in methods)]

    scores = []
    for scale in scales:
        for m in methods:
            values = list(means.get((scale, m), {}).values())
            mean, sd, low, high = t_interval(values, confidence)
            ci_low, ci_high = clip_interval(low, high, LIKERT)
            scores.append(MethodScore(m, scale, len(values), mean, sd, ci_low, ci_high, (high - low) / 2))

    pairs = []
    for scale in scales:
        family = []
        for a, b in combinations(methods, 2):
            xa, xb = means.get((scale, a), {}), means.get((scale, b), {})
            common = sorted(set(xa) & set(xb))
            x, y = [xa[p] for p in common], [xb[p] for p in common]
            t = signed_rank(x, y) if common else None
            family.append(PairTest(scale, a, b, len(common), _mean(x), _mean(y), _mean([u - v for u, v in zip(x, y)]),
                                   t.n if t else 0, t.r_plus if t else math.nan, t.r_minus if t else math.nan,
                                   t.statistic if t else math.nan, t.effect if t else math.nan,
                                   t.p if t else math.nan, math.nan, t.method if t else "no pairs", False))
        for t, adjusted in zip(family, holm([t.p for t in family])):
            t.p_holm, t.significant = adjusted, bool(adjusted < alpha)
        pairs += family

    forward, forward_tests = _forward(kept, methods, confidence, alpha)
    background = _background(means, people, analysed, scales, methods, alpha)
    comments = [(r.participant, r.text) for r in kept if r.kind == "comment" and r.text.strip()]
    level = fmt(100 * confidence, 0) + "%"
    procedures = {"rating interval": f"{RATING_CI} ({level})", "method comparison": PAIR_TEST,
                  "forward interval": f"{FORWARD_CI} ({level})", "forward simulation": FORWARD_TEST,
                  "backgrounds": BACKGROUND_TEST,
                  "exclusion": "participants failing any attention check" if exclude is None else "given list"}
    seen = {m: len({r.participant for r in kept if r.method == m}) for m in methods}
    return Analysis(methods, scales, analysed, excluded, confidence, alpha, scores, pairs, forward, forward_tests,
                    background, comments, procedures, _provenance(),
                    all_responses, people, method_participants=seen, min_participants=min_participants)


def _forward(kept: list[Response], methods: list[str], confidence: float,
             alpha: float) -> tuple[list[ForwardAccuracy], list[ForwardTest]]:
    answers: dict[tuple[str, str | None], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in kept:
        if r.kind == "forward" and r.correct is not None:
            answers[(r.condition, None)][r.participant].append(r.correct)
            if r.condition == "with":
                answers[("with", r.method)][r.participant].append(r.correct)
    rows, tests = [], []
    if not answers:
        return rows, tests
    for key in [("without", None), ("with", None)] + [("with", m) for m in methods]:
        per = answers.get(key, {})
        if not per and key[1] is not None:
            continue
        n_answers, n_correct = sum(map(len, per.values())), sum(map(sum, per.values()))
        low, high = wilson_interval(n_correct, n_answers, confidence)
        rows.append(ForwardAccuracy(key[0], key[1], len(per), n_answers, n_correct,
                                    _mean([_mean(v) for v in per.values()]), low, high,
                                    n_correct / n_answers if n_answers else math.nan))
    without = {p: _mean(v) for p, v in answers.get(("without", None), {}).items()}
    for method in [None, *methods]:
        with_ = {p: _mean(v) for p, v in answers.get(("with", method), {}).items()}
        common = sorted(set(with_) & set(without))
        if not common:
            continue
        x, y = [with_[p] for p in common], [without[p] for p in common]
        t = signed_rank(x, y)
        tests.append(ForwardTest(method, len(common), _mean(x), _mean(y), _mean(x) - _mean(y), t.statistic,
                                 t.effect, t.p, t.p, t.method, bool(t.p < alpha)))
    per_method = [t for t in tests if t.method is not None]
    for t, adjusted in zip(per_method, holm([t.p for t in per_method])):
        t.p_holm, t.significant = adjusted, bool(adjusted < alpha)
    return rows, tests


def _background(means: dict, people: list[Participant], analysed: list[str], scales: list[str],
                methods: list[str], alpha: float) -> list[BackgroundTest]:
    group = {p.id: p.background for p in people if p.id in set(analysed)}
    if not {"novice", "expert"} <= set(group.values()):
        return []
    out = []
    for scale in scales:
        family = []
        for m in methods:
            per = means.get((scale, m), {})
            nov = [v for p, v in per.items() if group.get(p) == "novice"]
            exp = [v for p, v in per.items() if group.get(p) == "expert"]
            t = rank_sum(nov, exp)
            family.append(BackgroundTest(scale, m, len(nov), len(exp), _mean(nov), _mean(exp), t.u, t.effect,
                                         t.p, math.nan, False))
        for t, adjusted in zip(family, holm([t.p for t in family])):
            t.p_holm, t.significant = adjusted, bool(adjusted < alpha)
        out += family
    return out
