"""TCAV validation of a study's top label concepts on the study's model (the analysis's optional step).

For each class, the ``concepts_per_class`` labels with the highest global score summed over layers
are tested; a concept's images are the regions its cluster maps reveal, the random sets random
regions of the study's images on the same background (see :mod:`netreveal.labels.analysis`).
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.labels.aggregate import LabelExplanations
from netreveal.store.db import Store
from netreveal.store.label_queries import pictures as media_pictures

if TYPE_CHECKING:
    from netreveal.labels.analysis import StudyAnalysis
    from netreveal.model.adapter import ModelAdapter

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

    return {k: png_tensor(v) for k, v in media_pictures(store, media_ids, 500).items()}


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


__all__ = ["TcavRow", "TcavSummary", "load_study_model", "validate_concepts"]
