"""A study's labels, analysed: local and global explanations, trends over depth, the naming
studio's inter-annotator agreement and, optionally, TCAV validation of the top label concepts.

    from netreveal.labels.analysis import analyse_study
    from netreveal.labels.report import write_label_report
    analysis = analyse_study(store, "demo", tcav=True)
    write_label_report(analysis, "labels-report")

Label embeddings are cached in the store (:class:`netreveal.studies.embedding_cache.StoreEmbeddingCache`),
so analysing a study again only embeds new label texts.

TCAV (seed 000, DESIGN §3): for each class, the ``tcav_concepts`` labels with the highest global
score summed over layers are tested on the study's model. A concept's images are the regions its
cluster maps reveal (every study map whose best label is the word, strongest first, at most 40),
kept on a blurred image; random sets are random regions of the study's images on the same
background (:func:`netreveal.concepts.tcav.random_region_images`). Each concept is tested at the
layer where it has its highest global score for the class (``tcav_layers="named"``: every layer
where it is among the class's top labels), with the class's images as the images TCAV scores are
computed on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netreveal.errors import NetrevealError
from netreveal.labels.aggregate import LabelExplanations, explain_labels
from netreveal.labels.agreement import AgreementReport, annotator_agreement
from netreveal.labels.embed import Embedder
from netreveal.labels.label_tcav import (  # TCAV of the top labels; kept importable from here
    TcavRow,
    TcavSummary,
    load_study_model,
    validate_concepts,
)
from netreveal.store.db import Store
from netreveal.store.label_queries import (
    label_count,
    label_sources,
    pictures,
    studio_groupings,
    study_images,
    study_items,
    study_record,
)
from netreveal.store.records import ImageRef, ItemRef

ImageInfo = ImageRef  # a study image as the analysis shows it
ItemInfo = ItemRef  # a study item (one cluster map of one image and layer)


@dataclass
class AnnotatorSummary:
    """One annotator's work in the naming studio."""

    name: str
    concepts: int
    named_maps: int
    coverage: float


@dataclass
class AgreementSummary:
    """The naming studio's annotators and, with two or more, their pairwise agreement."""

    n_maps: int
    annotators: list[AnnotatorSummary]
    report: AgreementReport | None = None


@dataclass
class StudyAnalysis:
    """Everything :func:`analyse_study` derives from a study's labels and concepts.

    ``images`` and ``items`` describe the whole study (items keyed by their id as a string, as in
    the label records); ``guess_count`` is the number of guesses with text when the labels were
    read (a cache key); ``pictures`` maps media ids to PNG bytes for the report (empty when not
    loaded).
    """

    study: str
    study_id: int
    model: dict
    classes: list[str]
    layers: list[str]
    images: list[ImageInfo]
    items: dict[str, ItemInfo]
    explanations: LabelExplanations
    n_labels: int
    sources: dict[str, int]
    n_players: int
    guess_count: int
    agreement: AgreementSummary
    tcav: TcavSummary | None
    params: dict
    provenance: dict
    pictures: dict[int, bytes] = field(default_factory=dict, repr=False)

    def image(self, key: str) -> ImageInfo | None:
        """The image called ``key``."""
        return next((i for i in self.images if i.key == key), None)

    def to_dict(self) -> dict:
        """Plain JSON values (pictures left out, NaN as None)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pictures"}
        return _plain(data)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- reading the study


def study_guess_count(store: Store, study_id: int) -> int:
    """Guesses with text on the study's items (changes whenever a label is added)."""
    return label_count(store, study_id)


def _read_study(store: Store, name: str):
    study = study_record(store, name)
    images = study_images(store, study.id)
    items = {str(i.id): i for i in study_items(store, study.id)}
    try:
        model = json.loads(study.model)
    except (TypeError, ValueError):
        model = {"model": str(study.model)}
    if not isinstance(model, dict):
        model = {"model": str(study.model)}
    return (study.id, model, study.classes, study.layers, study.params, images, items,
            label_sources(store, study.id))


def load_pictures(store: Store, media_ids: Sequence[int], chunk: int = 500) -> dict[int, bytes]:
    """PNG bytes of the given media rows."""
    return pictures(store, media_ids, chunk)


# ---------------------------------------------------------------- naming-studio agreement


def studio_agreement(store: Store, study_id: int, embed=None) -> AgreementSummary:
    """The naming studio's annotators of a study (anyone who made a concept there) and their
    agreement over the study's maps (every map is in the studio's gallery, so each annotator saw
    all of them: coverage is the share of the study's maps they put in a live concept)."""
    found = studio_groupings(store, study_id)
    item_ids, people, everyone, members = found.item_ids, found.live_concepts, found.annotators, found.members
    live = people
    groupings: dict[str, dict[str, str | None]] = {name: {} for name in sorted(everyone)}
    for username, item_id, concept in members:
        groupings[username][str(item_id)] = concept
    n_maps = len(item_ids)
    annotators = [
        AnnotatorSummary(name=n, concepts=int(live.get(n, 0)), named_maps=len(groupings[n]),
                         coverage=len(groupings[n]) / n_maps if n_maps else math.nan)
        for n in sorted(groupings)
    ]
    report = None
    if len(groupings) >= 2:
        seen = {n: item_ids for n in groupings}
        report = annotator_agreement(groupings, seen=seen, embed=embed)
    return AgreementSummary(n_maps=n_maps, annotators=annotators, report=report)


# ---------------------------------------------------------------- the analysis


def analyse_study(
    store: Store,
    name: str,
    *,
    model: Any = None,
    tcav: bool = False,
    adapter=None,
    n_best: int = 3,
    top: int = 5,
    n_examples: int = 3,
    max_k: int = 8,
    merge_distance: float = 0.5,
    spelling: bool = True,
    pictures: bool = True,
    agreement: bool = True,
    tcav_concepts: int = 2,
    tcav_layers: Sequence[str] | str = "best",
    tcav_runs: int = 6,
    tcav_set_size: int = 20,
    tcav_min_images: int = 4,
    tcav_fraction: float = 0.13,
    tcav_classifier: str = "hinge",
    alpha: float = 0.05,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = False,
    memo: dict | None = None,
) -> StudyAnalysis:
    """Analyse the labels of study ``name``.

    ``model``: the sentence-embedding model (None: the offline all-MiniLM-L6-v2; a name, a path,
    an object with ``encode``, or a ready :class:`~netreveal.labels.embed.Embedder`); embeddings are
    cached in the store unless an Embedder is given. ``n_best``, ``top``, ``n_examples``,
    ``max_k``, ``merge_distance`` and ``spelling`` go to
    :func:`~netreveal.labels.aggregate.explain_labels`. ``pictures``: load the images and maps the
    report shows; ``agreement``: the naming studio's inter-annotator agreement. ``tcav``: validate
    each class's ``tcav_concepts`` top labels with TCAV on ``adapter`` (default: the study's model,
    rebuilt from its stored description) at ``tcav_layers`` ("best", "named" or layer names), see
    :func:`validate_concepts`. ``memo``: a dict kept between calls with the same embedder, so items
    whose labels did not change are not scored again (:func:`~netreveal.labels.aggregate.score_items`).

    NetrevealError when the study is unknown or has no labels yet.
    """
    from netreveal.provenance import provenance
    from netreveal.store.studies import study_labels
    from netreveal.studies.embedding_cache import StoreEmbeddingCache

    study_id, description, classes, layers, study_params, images, items, sources = _read_study(store, name)
    count = study_guess_count(store, study_id)
    records = study_labels(store, name)
    if not records:
        raise NetrevealError(
            f"study {name!r} has no labels yet: play the reveal game, import labels "
            "(netreveal study import-labels) or simulate a crowd (netreveal labels crowd)"
        )
    if isinstance(model, Embedder):
        embedder = model
    else:
        embedder = Embedder(model, cache=StoreEmbeddingCache(store))
    explanations = explain_labels(records, layers, embedder, class_names=classes, n_best=n_best, top=top,
                                  n_examples=n_examples, max_k=max_k, merge_distance=merge_distance,
                                  spelling=spelling, memo=memo)
    studio = (studio_agreement(store, study_id, embedder) if agreement
              else AgreementSummary(n_maps=len(items), annotators=[]))
    params = {
        "labels": explanations.params,
        "tcav": tcav,
        "seed": seed,
        "crowd": study_params.get("crowd"),
        "study": {k: study_params.get(k) for k in ("method", "seed", "inv", "input_size") if k in study_params},
    }
    analysis = StudyAnalysis(
        study=name, study_id=study_id, model=description, classes=classes, layers=layers, images=images,
        items=items, explanations=explanations, n_labels=len(records), sources=sources,
        n_players=len({r.player for r in records if r.player}), guess_count=count, agreement=studio, tcav=None,
        params=params, provenance=provenance(seed=seed, study=name, embedding_model=embedder.model_id),
    )
    if tcav:
        if adapter is None:
            adapter = load_study_model(description, classes, name)
        analysis.tcav = validate_concepts(
            store, analysis, adapter, concepts_per_class=tcav_concepts, layers=tcav_layers, n_runs=tcav_runs,
            set_size=tcav_set_size, min_images=tcav_min_images, fraction=tcav_fraction, alpha=alpha,
            classifier=tcav_classifier, batch_size=batch_size, seed=seed, progress=progress,
        )
    if pictures:
        labelled = {r.item_id for r in records}
        shown = [items[i].map_media_id for i in labelled if i in items]
        analysis.pictures = load_pictures(store, [i.media_id for i in images] + shown)
    return analysis


__all__ = [
    "AgreementSummary",
    "AnnotatorSummary",
    "ImageInfo",
    "ItemInfo",
    "StudyAnalysis",
    "TcavRow",
    "TcavSummary",
    "analyse_study",
    "load_pictures",
    "load_study_model",
    "studio_agreement",
    "study_guess_count",
    "validate_concepts",
]
