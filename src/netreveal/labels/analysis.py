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
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.labels.aggregate import LabelExplanations, explain_labels
from netreveal.labels.agreement import AgreementReport, annotator_agreement
from netreveal.labels.embed import Embedder
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

if TYPE_CHECKING:
    from netreveal.model.adapter import ModelAdapter

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
class TcavRow:
    """TCAV of one label concept for one class at one layer."""

    concept: str
    image_class: str
    layer: str
    score: float
    score_std: float
    random: float
    p_value: float
    significant: bool
    direction: str
    cav_accuracy: float
    n_concept_images: int
    n_class_images: int
    warning: str = ""


@dataclass
class TcavSummary:
    """TCAV results, the concepts left out (with why) and the settings used."""

    rows: list[TcavRow]
    skipped: list[dict]
    params: dict


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


# ---------------------------------------------------------------- TCAV of label concepts


def load_study_model(
    model: dict, classes: Sequence[str], study: str, device: str | torch.device = "cpu"
) -> ModelAdapter:
    """The study's model (a :class:`~netreveal.model.adapter.ModelAdapter`) from its stored
    description; NetrevealError when it cannot be rebuilt as it was."""
    from netreveal.model.adapter import load_model

    spec = model.get("model")
    if not isinstance(spec, str) or not spec:
        raise NetrevealError(f"study {study!r} does not name its model; pass the model to analyse it with TCAV")
    weights = model.get("weights")
    factory = ":" in spec and not spec.startswith(("timm:", "torchvision:"))
    if spec != "demo" and not weights and not factory:
        raise NetrevealError(
            f"study {study!r} was made with {spec!r} without weights; TCAV needs that very model (pass adapter=)"
        )
    try:
        if spec == "demo":
            adapter = load_model("demo", device=device)
        else:
            adapter = load_model(spec, weights, class_names=list(classes), input_size=model.get("input_size"),
                                 device=device)
    except NetrevealError as exc:
        raise NetrevealError(f"cannot load the model of study {study!r}: {exc}") from exc
    return adapter


def _top_concepts(explanations: LabelExplanations, image_class: str, n: int) -> list[tuple[str, list[str], str]]:
    """The class's ``n`` labels with the highest global score summed over layers, each with the
    layers where it is among the class's top labels (shallow to deep) and the layer where it
    scores highest (the shallower one on a tie)."""
    total: dict[str, float] = defaultdict(float)
    per_layer: dict[str, dict[str, float]] = defaultdict(dict)
    for g in explanations.global_explanations:
        if g.image_class != image_class:
            continue
        for lab in g.labels:
            total[lab.word] += lab.score
            per_layer[lab.word][g.layer] = lab.score
    ranked = sorted(total, key=lambda w: (-total[w], w))[:n]
    order = {name: i for i, name in enumerate(explanations.layers)}
    out = []
    for w in ranked:
        named = sorted(per_layer[w], key=order.__getitem__)
        out.append((w, named, max(named, key=lambda layer: (per_layer[w][layer], -order[layer]))))
    return out


def _decode(store: Store, media_ids: Sequence[int]) -> dict[int, torch.Tensor]:
    from netreveal.studies.pictures import png_tensor

    return {k: png_tensor(v) for k, v in load_pictures(store, media_ids).items()}


def _as_images(pictures: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    batch = torch.stack([p if p.dim() == 3 else p[None].expand(3, -1, -1) for p in pictures]).float()
    if tuple(batch.shape[-2:]) != (size, size):
        batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True).clamp(0, 1)
    return batch


def validate_concepts(
    store: Store,
    analysis: StudyAnalysis,
    adapter,
    *,
    concepts_per_class: int = 2,
    layers: Sequence[str] | str = "best",
    n_runs: int = 6,
    set_size: int = 20,
    max_images: int = 40,
    min_images: int = 4,
    fraction: float = 0.13,
    alpha: float = 0.05,
    classifier: str = "hinge",
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> TcavSummary:
    """TCAV of each class's top label concepts on ``adapter``'s model (see the module docstring).

    One TCAV experiment per concept word, covering every class it is a top label of. ``layers``:
    "best" tests each (concept, class) at the layer where the concept has its highest global score
    for the class, "named" at every layer where it is among the class's top labels, a list of
    layer names at those layers. A concept with fewer than ``min_images`` maps is skipped (listed
    in ``skipped``). ``classifier``: the CAV classifier (``hinge``, the reference's, or
    ``logistic``). A class with too few images for a significant verdict keeps its row with a
    ``warning`` and is never marked significant (see :func:`netreveal.concepts.tcav.min_class_images_for`).
    """
    from netreveal.concepts.cav import check_classifier
    from netreveal.concepts.tcav import (
        TcavWarning,
        concept_images,
        layer_activations,
        layer_gradients,
        random_region_images,
        tcav,
    )

    check_classifier(classifier)
    if concepts_per_class < 1:
        raise NetrevealError("tcav_concepts must be at least 1")
    if set_size < 2 or min_images < 2:
        raise NetrevealError("TCAV sets need at least two images")
    expl = analysis.explanations
    names = list(adapter.class_names)
    missing = sorted({i.predicted_class for i in analysis.images} - set(names))
    if missing:
        raise NetrevealError(f"the model has no class {missing[0]!r} of study {analysis.study!r}")
    if isinstance(layers, str) and layers not in ("best", "named"):
        raise NetrevealError(f"TCAV layers must be 'best', 'named' or a list of layer names, got {layers!r}")
    if not isinstance(layers, str):
        layers = [str(layer) for layer in layers]
        unknown = [layer for layer in layers if layer not in expl.layers]
        if unknown or not layers:
            raise NetrevealError(
                f"TCAV layer {unknown[0] if unknown else ''!r} is not a layer of study {analysis.study!r}"
            )
    wanted: dict[str, dict[str, list[str]]] = defaultdict(dict)  # word -> class -> layers
    for cls in sorted({g.image_class for g in expl.global_explanations}):
        for word, named, best_layer in _top_concepts(expl, cls, concepts_per_class):
            wanted[word][cls] = [best_layer] if layers == "best" else named if layers == "named" else list(layers)
    params = {"concepts_per_class": concepts_per_class, "layers": layers,
              "n_runs": n_runs, "set_size": set_size, "max_images": max_images, "min_images": min_images,
              "fraction": fraction, "alpha": alpha, "classifier": classifier, "seed": seed,
              "model": adapter.describe(),
              "positives": "regions of the maps whose best label is the concept (strongest first)",
              "randoms": "random regions of the study's images on the same blurred background"}
    rows: list[TcavRow] = []
    skipped: list[dict] = []
    if not wanted:
        return TcavSummary(rows, skipped, params)
    by_image = {i.key: i for i in analysis.images}
    size = int(adapter.input_size)
    image_media = [i.media_id for i in analysis.images]
    pictures = _decode(store, image_media)
    all_images = _as_images([pictures[m] for m in image_media], size)
    index_of = {m: k for k, m in enumerate(image_media)}
    pool_n = max(2 * set_size, 2 * set_size * n_runs)
    randoms = random_region_images(all_images, pool_n, fraction=fraction, seed=seed)
    best: dict[str, list] = defaultdict(list)
    for it in expl.items:
        if it.labels and it.best:
            best[it.best].append(it)
    device = adapter.device
    # every concept is tested against the same random pool on the same images: their activations
    # and the images' class-logit gradients are computed once, for every layer any concept needs
    # (all_images[k] is analysis.images[k]; every predicted class is one of the model's, checked above)
    depth = {name: d for d, name in enumerate(expl.layers)}
    all_layers = sorted({layer for per_class in wanted.values() for ls in per_class.values() for layer in ls},
                        key=lambda name: depth.get(name, len(depth)))
    random_acts = layer_activations(adapter.model, randoms.to(device), all_layers, batch_size)
    all_grads = layer_gradients(adapter.model, all_images.to(device),
                                torch.tensor([names.index(i.predicted_class) for i in analysis.images]).to(device),
                                all_layers, batch_size)
    random_cavs: dict = {}
    for word in tqdm(sorted(wanted), desc="TCAV concepts", disable=not progress):
        per_class = wanted[word]
        chosen = sorted(best.get(word, []), key=lambda it: (-it.labels[0].score, -it.weight, it.item_id))[:max_images]
        if len(chosen) < min_images:
            for cls in sorted(per_class):
                skipped.append({"concept": word, "class": cls,
                                "reason": f"{len(chosen)} map(s) with this best label (need {min_images})"})
            continue
        infos = [analysis.items[it.item_id] for it in chosen]
        maps = _decode(store, [i.map_media_id for i in infos])
        cmaps = torch.stack([m if m.dim() == 2 else m.mean(0) for m in (maps[i.map_media_id] for i in infos)])
        base = all_images[[index_of[by_image[i.image_key].media_id] for i in infos]]
        positives = concept_images(base, cmaps.float(), fraction=fraction)
        classes = sorted(per_class)
        members = [i for i in analysis.images if i.predicted_class in per_class]
        images = all_images[[index_of[i.media_id] for i in members]]
        targets = torch.tensor([names.index(i.predicted_class) for i in members])
        test_layers = sorted({layer for cls in classes for layer in per_class[cls]},
                             key=lambda name: depth.get(name, len(depth)))
        rows_idx = torch.tensor([index_of[i.media_id] for i in members], device=device)
        with warnings.catch_warnings():  # the rows carry the warnings
            warnings.simplefilter("ignore", TcavWarning)
            result = tcav(adapter.model, positives.to(device), randoms.to(device), images.to(device), targets,
                          test_layers, name=word, n_runs=n_runs, set_size=min(set_size, len(chosen)), alpha=alpha,
                          classifier=classifier, batch_size=batch_size, seed=seed, class_names=names,
                          random_activations={layer: random_acts[layer] for layer in test_layers},
                          image_gradients={layer: all_grads[layer][rows_idx] for layer in test_layers},
                          random_cavs=random_cavs)
        counts = Counter(i.predicted_class for i in members)
        for row in result.rows():
            if row["layer"] not in per_class.get(row["class"], []):
                continue
            rows.append(TcavRow(concept=word, image_class=row["class"], layer=row["layer"], score=row["tcav"],
                                score_std=row["tcav_std"], random=row["random"], p_value=row["p_value"],
                                significant=row["significant"], direction=row["direction"],
                                cav_accuracy=row["cav_accuracy"], n_concept_images=len(chosen),
                                n_class_images=counts[row["class"]], warning=row["warning"]))
        params["min_class_images"] = result.params["min_class_images"]
    order = {name: i for i, name in enumerate(analysis.classes)}
    rows.sort(key=lambda r: (order.get(r.image_class, len(order)), r.image_class, r.concept,
                             expl.layers.index(r.layer) if r.layer in expl.layers else 0))
    return TcavSummary(rows, skipped, params)


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
