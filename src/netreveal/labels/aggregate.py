"""From people's labels to explanations: label scores per cluster map, local explanations per
image, global explanations per class and layer, and how each label's score moves with depth.

    from netreveal.labels.aggregate import explain_labels
    from netreveal.labels.embed import Embedder
    result = explain_labels(records, layers=["block3", "block4", "block5"], embedder=Embedder())
    print(result.global_explanations[0].labels[0].word)

A label's *score* (seed 000): for the labels of one label cluster,
``sum_i c_i * (1 - 0.1 * step_i)`` with ``c_i = 1`` for a correct guess and ``1/4`` for a wrong
one, i.e. frequency * (1 - 0.1 * mean reveal step), wrong guesses counting a quarter.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.nlp import (
    clean_label,
    cluster_labels,
    representative_word,
    spelling_corrections,
)
from netreveal.labels.records import LabelRecord

STEP_FACTOR = 0.1
WRONG_FACTOR = 0.25


class _Dict:
    def to_dict(self) -> dict:
        """Plain JSON-serialisable values."""
        return dataclasses.asdict(self)


@dataclass
class LabelCluster(_Dict):
    """Labels of one cluster map that mean the same thing, named by their representative word.

    ``support``: summed cosine similarity of the word to all of the map's labels (breaks ties
    between equally scored clusters).
    """

    word: str
    score: float
    count: int
    n_correct: int
    mean_step: float
    texts: list[str]
    support: float = 0.0


@dataclass
class ItemLabels(_Dict):
    """One cluster map (study item) with its label clusters, best first."""

    item_id: str
    image: str
    image_class: str
    layer: str
    cluster: int
    weight: float
    n_labels: int
    labels: list[LabelCluster]

    @property
    def best(self) -> str | None:
        """The representative word of the best-scoring label cluster (None without labels)."""
        return self.labels[0].word if self.labels else None


@dataclass
class LabelScore(_Dict):
    word: str
    score: float


@dataclass
class LocalEntry(_Dict):
    """Cluster maps of one image and layer that share a best label, merged (weights summed)."""

    clusters: list[int]
    item_ids: list[str]
    weight: float
    labels: list[LabelScore]

    @property
    def best(self) -> str | None:
        return self.labels[0].word if self.labels else None


@dataclass
class LocalLayer(_Dict):
    layer: str
    entries: list[LocalEntry]


@dataclass
class LocalExplanation(_Dict):
    """Per image: for each layer (shallow to deep), the cluster maps with their best labels."""

    image: str
    image_class: str
    layers: list[LocalLayer]


@dataclass
class GlobalLabel(_Dict):
    """A label across the images of one class at one layer."""

    word: str
    score: float
    count: int
    mean_weight: float
    examples: list[str]


@dataclass
class GlobalExplanation(_Dict):
    """Per class and layer: the labels with the highest summed best-label score."""

    image_class: str
    layer: str
    depth: int
    n_images: int
    labels: list[GlobalLabel]


@dataclass
class LabelTrend(_Dict):
    """A label's summed score at each layer (in layer order) of one class, and its least-squares
    slope over depth (layer index 0, 1, ...)."""

    image_class: str
    word: str
    scores: list[float]
    slope: float


@dataclass
class LabelExplanations(_Dict):
    """Everything :func:`explain_labels` derives from a set of labels."""

    layers: list[str]
    items: list[ItemLabels]
    local: list[LocalExplanation]
    global_explanations: list[GlobalExplanation]
    trends: list[LabelTrend]
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------- scores


def label_score(
    steps: Sequence[int],
    correct: Sequence[bool],
    step_factor: float = STEP_FACTOR,
    wrong_factor: float = WRONG_FACTOR,
) -> float:
    """Score of a group of labels: ``sum_i c_i * (1 - step_factor * step_i)``, ``c_i`` 1 for a
    correct guess and ``wrong_factor`` for a wrong one (= frequency x (1 - 0.1 x mean step) per
    outcome, wrong guesses divided by 4)."""
    if len(steps) != len(correct):
        raise NetrevealError("label_score needs one correctness flag per reveal step")
    total = 0.0
    for step, ok in zip(steps, correct):
        factor = 1.0 - step_factor * float(step)
        if step < 0 or factor <= 0:
            raise NetrevealError(f"reveal step {step} is out of range for step factor {step_factor}")
        total += factor * (1.0 if ok else wrong_factor)
    return total


def _check_layers(records: Sequence[LabelRecord], layers: Sequence[str]) -> list[str]:
    layers = list(layers)
    if len(set(layers)) != len(layers):
        raise NetrevealError("a layer is listed twice in the layer order")
    unknown = sorted({r.layer for r in records} - set(layers))
    if unknown:
        raise NetrevealError(
            f"labels name layer(s) missing from the layer order: {', '.join(unknown[:5])}"
        )
    return layers


def score_items(
    records: Sequence[LabelRecord],
    embedder: Callable[[Sequence[str]], torch.Tensor],
    class_names: Sequence[str] | None = None,
    max_k: int = 8,
    merge_distance: float = 0.5,
    step_factor: float = STEP_FACTOR,
    wrong_factor: float = WRONG_FACTOR,
    spelling: bool = True,
    memo: dict | None = None,
) -> list[ItemLabels]:
    """Clean, embed and cluster each cluster map's labels; name and score each label cluster
    (best first: score, then number of labels, then support).

    Labels are cleaned with ``class_names`` removed (default: every class in the records) and
    misspellings corrected against the words of all ``records`` (``spelling=False``: not);
    labels empty after cleaning are dropped. Items come in order of first appearance.

    ``memo`` (a dict the caller keeps, for one embedder) remembers each item's result under its
    cleaned labels and settings: an item whose cleaned labels did not change since the last call is
    not clustered and named again (the memo then holds only this call's items).
    """
    if class_names is None:
        class_names = sorted({r.image_class for r in records})
    fixes = spelling_corrections(r.text for r in records) if spelling else None
    by_item: dict[str, list[LabelRecord]] = defaultdict(list)
    cleaned: dict[str, str] = {}
    for r in records:
        by_item[r.item_id].append(r)
        if r.text not in cleaned:
            cleaned[r.text] = clean_label(r.text, class_names, fixes)
    texts = sorted({c for c in cleaned.values() if c})
    words = sorted({w for t in texts for w in t.split()})
    vectors = dict(zip(texts, np.asarray(torch.as_tensor(embedder(texts)).cpu(), dtype=np.float64))) if texts else {}
    if words:
        embedder(words)  # one batch for every candidate word (a caching embedder keeps them)
    out = []
    seen: dict = {}
    for item_id, group in by_item.items():
        first = group[0]
        kept = [(r, cleaned[r.text]) for r in group if cleaned[r.text]]
        key = (item_id, first.image, first.image_class, first.layer, int(first.cluster), float(first.weight),
               len(group), tuple((t, r.step, bool(r.correct)) for r, t in kept), max_k, merge_distance,
               step_factor, wrong_factor)
        if memo is not None and key in memo:
            out.append(seen.setdefault(key, memo[key]))
            continue
        clusters: list[LabelCluster] = []
        if kept:
            vecs = np.stack([vectors[t] for _, t in kept])
            assign = cluster_labels(vecs, max_k=max_k, merge_distance=merge_distance)
            for c in range(max(assign) + 1):
                idx = [i for i, a in enumerate(assign) if a == c]
                members = [kept[i] for i in idx]
                steps = [r.step for r, _ in members]
                clusters.append(
                    LabelCluster(
                        word=representative_word([t for _, t in members], embedder, vecs[idx]),
                        score=label_score(
                            steps, [r.correct for r, _ in members], step_factor, wrong_factor
                        ),
                        count=len(members),
                        n_correct=sum(r.correct for r, _ in members),
                        mean_step=sum(steps) / len(steps),
                        texts=[t for _, t in members],
                    )
                )
            named = [c for c in clusters if c.word]
            if named:  # tie-break: how well the word fits all of the map's labels
                words = np.asarray(torch.as_tensor(embedder([c.word for c in named])).cpu(), dtype=np.float64)
                unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
                words /= np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
                for c, total in zip(named, (words @ unit.T).sum(axis=1)):
                    c.support = float(total)
            clusters.sort(key=lambda c: (-c.score, -c.count, -c.support, c.word))
        out.append(
            ItemLabels(
                item_id=item_id,
                image=first.image,
                image_class=first.image_class,
                layer=first.layer,
                cluster=int(first.cluster),
                weight=float(first.weight),
                n_labels=len(group),
                labels=clusters,
            )
        )
        seen[key] = out[-1]
    if memo is not None:
        memo.clear()
        memo.update(seen)
    return out


# ---------------------------------------------------------------- local explanations


def local_explanations(
    items: Sequence[ItemLabels], layers: Sequence[str], n_best: int = 3
) -> list[LocalExplanation]:
    """Per image and layer, each cluster map with its ``n_best`` labels (word, score) and weight;
    cluster maps sharing their best label are merged: weights and label scores summed."""
    grouped: dict[str, dict[str, list[ItemLabels]]] = defaultdict(lambda: defaultdict(list))
    classes: dict[str, str] = {}
    for item in items:
        grouped[item.image][item.layer].append(item)
        classes.setdefault(item.image, item.image_class)
    out = []
    for image, per_layer in grouped.items():
        layer_entries = []
        for layer in layers:
            entries: list[LocalEntry] = []
            by_best: dict[str, LocalEntry] = {}
            scores: dict[int, dict[str, float]] = {}
            for item in sorted(per_layer.get(layer, []), key=lambda i: i.cluster):
                best = item.best
                entry = by_best.get(best) if best is not None else None
                if entry is None:
                    entry = LocalEntry(clusters=[], item_ids=[], weight=0.0, labels=[])
                    entries.append(entry)
                    scores[id(entry)] = {}
                    if best is not None:
                        by_best[best] = entry
                entry.clusters.append(item.cluster)
                entry.item_ids.append(item.item_id)
                entry.weight += item.weight
                table = scores[id(entry)]
                for lab in item.labels:
                    table[lab.word] = table.get(lab.word, 0.0) + lab.score
            for entry in entries:
                ranked = sorted(scores[id(entry)].items(), key=lambda kv: (-kv[1], kv[0]))
                entry.labels = [LabelScore(w, s) for w, s in ranked[:n_best]]
            entries.sort(key=lambda e: -e.weight)
            if entries:
                layer_entries.append(LocalLayer(layer=layer, entries=entries))
        out.append(LocalExplanation(image=image, image_class=classes[image], layers=layer_entries))
    return out


# ---------------------------------------------------------------- global explanations


def _global_table(local: Sequence[LocalExplanation]):
    """(class, layer) -> word -> [summed score, weights, (score, image) examples]; image counts."""
    table: dict[tuple[str, str], dict[str, list]] = defaultdict(dict)
    images: dict[tuple[str, str], set[str]] = defaultdict(set)
    for expl in local:
        for layer in expl.layers:
            key = (expl.image_class, layer.layer)
            images[key].add(expl.image)
            for entry in layer.entries:
                if not entry.labels:
                    continue
                top = entry.labels[0]
                row = table[key].setdefault(top.word, [0.0, [], []])
                row[0] += top.score
                row[1].append(entry.weight)
                row[2].append((top.score, expl.image))
    return table, images


def global_explanations(
    local: Sequence[LocalExplanation], layers: Sequence[str], top: int = 5, n_examples: int = 3
) -> list[GlobalExplanation]:
    """Per class and layer: best labels summed over the class's images, the ``top`` ones with
    how many images had them, the mean weight of their cluster maps and example images (highest
    scores first)."""
    table, images = _global_table(local)
    classes = sorted({c for c, _ in images})
    out = []
    for cls in classes:
        for depth, layer in enumerate(layers):
            key = (cls, layer)
            if key not in images:
                continue
            rows = sorted(table.get(key, {}).items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
            labels = [
                GlobalLabel(
                    word=word,
                    score=score,
                    count=len(weights),
                    mean_weight=sum(weights) / len(weights),
                    examples=[img for _, img in sorted(ex, key=lambda e: (-e[0], e[1]))][:n_examples],
                )
                for word, (score, weights, ex) in rows
            ]
            out.append(GlobalExplanation(cls, layer, depth, len(images[key]), labels))
    return out


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, ... (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def label_trends(local: Sequence[LocalExplanation], layers: Sequence[str]) -> list[LabelTrend]:
    """For each class and label: its summed best-label score at every layer (0 where absent)
    and the least-squares slope over depth; strongest rises first, then strongest falls."""
    table, _ = _global_table(local)
    words: dict[str, set[str]] = defaultdict(set)
    for (cls, _), rows in table.items():
        words[cls].update(rows)
    out = []
    for cls in sorted(words):
        for word in sorted(words[cls]):
            scores = [table.get((cls, layer), {}).get(word, [0.0])[0] for layer in layers]
            out.append(LabelTrend(cls, word, scores, slope(scores)))
    out.sort(key=lambda t: (t.image_class, -t.slope, t.word))
    return out


def explain_labels(
    records: Sequence[LabelRecord],
    layers: Sequence[str],
    embedder: Callable[[Sequence[str]], torch.Tensor],
    class_names: Sequence[str] | None = None,
    n_best: int = 3,
    top: int = 5,
    n_examples: int = 3,
    max_k: int = 8,
    merge_distance: float = 0.5,
    spelling: bool = True,
    memo: dict | None = None,
) -> LabelExplanations:
    """The whole label pipeline: scored label clusters per cluster map, local explanations per
    image, global explanations per class and layer, and label trends across ``layers`` (the
    layer order, shallow to deep). ``memo``: see :func:`score_items`."""
    layers = _check_layers(records, layers)
    items = score_items(records, embedder, class_names, max_k=max_k, merge_distance=merge_distance,
                        spelling=spelling, memo=memo)
    local = local_explanations(items, layers, n_best=n_best)
    return LabelExplanations(
        layers=layers,
        items=items,
        local=local,
        global_explanations=global_explanations(local, layers, top=top, n_examples=n_examples),
        trends=label_trends(local, layers),
        params={
            "n_best": n_best,
            "top": top,
            "n_examples": n_examples,
            "max_k": max_k,
            "merge_distance": merge_distance,
            "spelling": spelling,
            "step_factor": STEP_FACTOR,
            "wrong_factor": WRONG_FACTOR,
            "embedding_model": getattr(embedder, "model_id", type(embedder).__name__),
            "records": len(records),
        },
    )
