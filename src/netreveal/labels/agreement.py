"""Agreement between annotators who grouped activation maps into named concepts (seed 003).

Each annotator's work is a mapping ``item id -> concept name`` (None: seen, but given no concept).
For each pair of annotators, over the maps both saw and both named:

- adjusted Rand index and adjusted mutual information of the two groupings (scikit-learn);
- agreement of names: concepts are matched one-to-one by maximum overlap (Hungarian algorithm on
  the contingency table); each matched pair's names are compared by the cosine similarity of their
  embeddings (or exact equality of the cleaned names without an embedder), averaged with the
  number of maps the pair shares as weight.

Per annotator, coverage is the share of the maps they saw that got a concept.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.nlp import clean_label

Grouping = Mapping[str, str | None]


@dataclass
class ConceptMatch:
    """Two annotators' concepts matched by overlap, with how alike their names are."""

    concept_a: str
    concept_b: str
    overlap: int
    name_similarity: float


@dataclass
class PairAgreement:
    """Agreement of annotators ``a`` and ``b`` over the ``n_common`` maps both named."""

    a: str
    b: str
    n_common: int
    ari: float
    ami: float
    name_similarity: float
    name_exact: float
    matches: list[ConceptMatch]


@dataclass
class AgreementReport:
    """Pairwise agreement, its mean over pairs (NaN pairs skipped) and coverage per annotator."""

    pairs: list[PairAgreement]
    coverage: dict[str, float]
    mean_ari: float
    mean_ami: float
    mean_name_similarity: float
    mean_coverage: float

    def to_dict(self) -> dict:
        """Plain JSON values (None where a figure is undefined)."""
        return _no_nan(dataclasses.asdict(self))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def coverage(grouping: Grouping, seen: Collection[str] | None = None) -> float:
    """Share of the ``seen`` maps (default: every key of ``grouping``) that got a concept."""
    items = list(grouping) if seen is None else list(seen)
    if not items:
        return math.nan
    return sum(1 for i in items if grouping.get(i) is not None) / len(items)


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def match_concepts(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, str, int]]:
    """One-to-one matching of the concepts of two aligned label lists maximising the total
    overlap (Hungarian algorithm); pairs without overlap are left out."""
    from scipy.optimize import linear_sum_assignment

    names_a, names_b = sorted(set(a)), sorted(set(b))
    ia = {n: i for i, n in enumerate(names_a)}
    ib = {n: i for i, n in enumerate(names_b)}
    table = np.zeros((len(names_a), len(names_b)), dtype=np.int64)
    for x, y in zip(a, b):
        table[ia[x], ib[y]] += 1
    rows, cols = linear_sum_assignment(table, maximize=True)
    return [
        (names_a[r], names_b[c], int(table[r, c])) for r, c in zip(rows, cols) if table[r, c] > 0
    ]


def _name_similarities(
    pairs: Sequence[tuple[str, str]], embed: Callable[[Sequence[str]], torch.Tensor] | None
) -> list[float]:
    cleaned = [(clean_label(x) or x.strip().lower(), clean_label(y) or y.strip().lower()) for x, y in pairs]
    if embed is None or not pairs:
        return [1.0 if x == y else 0.0 for x, y in cleaned]
    va = torch.as_tensor(embed([x for x, _ in cleaned]), dtype=torch.float64)
    vb = torch.as_tensor(embed([y for _, y in cleaned]), dtype=torch.float64)
    sims = torch.nn.functional.cosine_similarity(va, vb, dim=1)
    return [1.0 if x == y else float(s) for (x, y), s in zip(cleaned, sims)]


def pair_agreement(
    a: Grouping,
    b: Grouping,
    names: tuple[str, str] = ("a", "b"),
    seen: tuple[Collection[str] | None, Collection[str] | None] = (None, None),
    embed: Callable[[Sequence[str]], torch.Tensor] | None = None,
) -> PairAgreement:
    """Agreement of two groupings over the maps both saw (``seen``; default: their keys) and
    both gave a concept. Figures are NaN with fewer than two such maps."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    seen_a = set(a) if seen[0] is None else set(seen[0])
    seen_b = set(b) if seen[1] is None else set(seen[1])
    common = sorted(
        i for i in seen_a & seen_b if a.get(i) is not None and b.get(i) is not None
    )
    la = [str(a[i]) for i in common]
    lb = [str(b[i]) for i in common]
    if len(common) < 2:
        return PairAgreement(names[0], names[1], len(common), math.nan, math.nan, math.nan,
                             math.nan, [])
    matched = match_concepts(la, lb)
    sims = _name_similarities([(x, y) for x, y, _ in matched], embed)
    exact = _name_similarities([(x, y) for x, y, _ in matched], None)
    total = sum(n for _, _, n in matched)
    return PairAgreement(
        a=names[0],
        b=names[1],
        n_common=len(common),
        ari=float(adjusted_rand_score(la, lb)),
        ami=float(adjusted_mutual_info_score(la, lb)),
        name_similarity=sum(s * n for s, (_, _, n) in zip(sims, matched)) / total,
        name_exact=sum(s * n for s, (_, _, n) in zip(exact, matched)) / total,
        matches=[ConceptMatch(x, y, n, s) for (x, y, n), s in zip(matched, sims)],
    )


def annotator_agreement(
    groupings: Mapping[str, Grouping],
    seen: Mapping[str, Collection[str]] | None = None,
    embed: Callable[[Sequence[str]], torch.Tensor] | None = None,
) -> AgreementReport:
    """Agreement of every pair of annotators and its mean; coverage of each annotator.

    ``groupings``: annotator -> (item id -> concept name or None); ``seen``: annotator -> the item
    ids they were shown (default: the keys of their grouping); ``embed``: texts -> vectors for
    name similarity (e.g. :class:`~netreveal.labels.embed.Embedder`; None: exact names).
    """
    if len(groupings) < 2:
        raise NetrevealError("agreement needs at least two annotators")
    seen = seen or {}
    annotators = list(groupings)
    pairs = [
        pair_agreement(groupings[x], groupings[y], (x, y), (seen.get(x), seen.get(y)), embed)
        for x, y in itertools.combinations(annotators, 2)
    ]
    cover = {n: coverage(groupings[n], seen.get(n)) for n in annotators}
    return AgreementReport(
        pairs=pairs,
        coverage=cover,
        mean_ari=_mean([p.ari for p in pairs]),
        mean_ami=_mean([p.ami for p in pairs]),
        mean_name_similarity=_mean([p.name_similarity for p in pairs]),
        mean_coverage=_mean(list(cover.values())),
    )
