"""What the naming studio's concepts say: the typical reasons behind each predicted class
(:func:`class_summary`) and one classification as a few named concepts (:func:`explain_image`)."""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy.orm import Session

from netreveal.store.concept_views import (
    ClassSummary,
    ConceptShare,
    ImageExplanation,
    ItemView,
    _id,
    image_concept_maps,
    study_concept_maps,
)
from netreveal.store.db import Store
from netreveal.store.models import Account, Study


class _Groups:
    """Concepts grouped by case-folded name: their ids, annotators, spellings and member maps."""

    def __init__(self, rows: list[tuple[int, int, str, str]]):
        self.items: dict[str, set[int]] = defaultdict(set)
        self.concepts: dict[str, set[int]] = defaultdict(set)
        self.annotators: dict[str, set[str]] = defaultdict(set)
        spellings: dict[str, Counter] = defaultdict(Counter)
        seen: set[int] = set()
        for item, cid, name, username in rows:
            key = name.casefold()
            self.items[key].add(item)
            self.concepts[key].add(cid)
            self.annotators[key].add(username)
            if cid not in seen:
                seen.add(cid)
                spellings[key][name] += 1
        self.names = {key: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, c in spellings.items()}
        self.named: set[int] = set().union(*self.items.values()) if self.items else set()


def _share(groups: _Groups, key: str, items: list[ItemView], n_images: int, total_weight: float,
           examples: int) -> ConceptShare:
    weight = sum(v.weight for v in items)
    images = len({v.image_id for v in items})
    best: dict[int, ItemView] = {}
    for view in sorted(items, key=lambda v: (-v.weight, v.id)):
        best.setdefault(view.image_id, view)
    return ConceptShare(
        name=groups.names[key], concept_ids=sorted(groups.concepts[key]), annotators=sorted(groups.annotators[key]),
        images=images, image_fraction=images / n_images if n_images else 0.0, items=len(items), weight=weight,
        mean_weight=weight / images if images else 0.0, share=weight / total_weight if total_weight else 0.0,
        examples=list(best.values())[:examples],
    )


def class_summary(
    db: Store | Session,
    study: Study | int,
    annotator: Account | int | None = None,
    *,
    examples: int = 4,
) -> list[ClassSummary]:
    """Per predicted class, the named concepts behind its predictions (across annotators, or for one).

    For each class (in the study's class order, classes without images left out): its images and
    maps, how many maps have a concept, and per concept the number of the class's images with a map
    in it, the summed weight of those maps, and up to ``examples`` example maps (the strongest map
    of each of the strongest images). Concepts are sorted by images, then weight.
    """
    sid = _id(study, "study")
    aid = None if annotator is None else _id(annotator, "annotator")
    found = study_concept_maps(db, sid, aid)
    order = {name: i for i, name in enumerate(found.classes)}
    views, image_classes, groups = found.items, found.image_classes, _Groups(found.named)
    by_class: dict[str, list[ItemView]] = defaultdict(list)
    for view in views:
        by_class[view.predicted_class].append(view)
    images_per_class = Counter(image_classes.values())
    summaries = []
    for class_name in sorted(images_per_class, key=lambda c: (order.get(c, len(order)), c)):
        items = by_class.get(class_name, [])
        total = sum(v.weight for v in items)
        n_images = images_per_class[class_name]
        shares = []
        for key, members in groups.items.items():
            chosen = [v for v in items if v.id in members]
            if chosen:
                shares.append(_share(groups, key, chosen, n_images, total, examples))
        shares.sort(key=lambda s: (-s.images, -s.weight, s.name.casefold()))
        summaries.append(ClassSummary(
            class_name=class_name, images=n_images, items=len(items),
            named_items=sum(1 for v in items if v.id in groups.named), total_weight=total, concepts=shares,
        ))
    return summaries


def explain_image(
    db: Store | Session,
    study: Study | int,
    image: int,
    annotator: Account | int | None = None,
    *,
    top: int = 5,
) -> ImageExplanation:
    """One image's classification as its ``top`` named concepts (by summed map weight) and the unnamed rest.

    Each concept's ``weight`` is the summed INV weight (percent, over all layers) of the image's
    maps in it, ``share`` that weight over all the image's maps; ``examples`` are those maps.
    """
    sid, iid = _id(study, "study"), _id(image, "image")
    aid = None if annotator is None else _id(annotator, "annotator")
    row, views, named = image_concept_maps(db, sid, iid, aid)
    groups = _Groups(named)
    total = sum(v.weight for v in views)
    shares = []
    for key, members in groups.items.items():
        chosen = [v for v in views if v.id in members]
        if chosen:
            share = _share(groups, key, chosen, 1, total, examples=0)
            share.examples = chosen
            shares.append(share)
    shares.sort(key=lambda s: (-s.weight, s.name.casefold()))
    unnamed = sum(v.weight for v in views if v.id not in groups.named)
    return ImageExplanation(
        image_id=row.id, image_key=row.key, image_media_id=row.media_id, predicted_class=row.predicted_class,
        true_class=row.true_class, probability=float(row.probability), total_weight=total,
        unnamed_weight=unnamed, unnamed_share=unnamed / total if total else 0.0, concepts=shares[:max(0, top)],
    )


__all__ = ["class_summary", "explain_image"]
