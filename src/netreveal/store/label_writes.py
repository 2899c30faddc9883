"""Storing imported labels: the items' images, the guesses already stored under request ids, and
inserting new guesses with their items' label counts. The caller owns the transaction (a
``Session`` from :meth:`netreveal.store.db.Store.session`), so checks and inserts are one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from netreveal.store.models import Guess, Item, StudyImage
from netreveal.store.records import ImageRef

GuessKey = tuple[int, int, "str | None", str]  # item id, step, guessed class, text


def item_images(session: Session, study_id: int, item_ids: Sequence[int], chunk: int = 500) -> dict[int, ImageRef]:
    """The image of each of ``item_ids`` that belongs to study ``study_id`` (other ids are left out)."""
    wanted = sorted(set(item_ids))
    images: dict[int, ImageRef] = {}
    for start in range(0, len(wanted), chunk):
        query = (
            select(Item.id, StudyImage)
            .join(StudyImage, Item.image_id == StudyImage.id)
            .where(Item.study_id == study_id, Item.id.in_(wanted[start : start + chunk]))
        )
        images.update({
            item_id: ImageRef(id=i.id, key=i.key, true_class=i.true_class, predicted_class=i.predicted_class,
                              probability=float(i.probability), media_id=i.media_id)
            for item_id, i in session.execute(query)
        })
    return images


def stored_guesses(session: Session, request_ids: Sequence[str], chunk: int = 500) -> dict[str, GuessKey]:
    """What is stored under each of ``request_ids`` that is taken: (item id, step, guessed class, text)."""
    ids = list(request_ids)
    found: dict[str, GuessKey] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        found.update({g.request_id: (g.item_id, g.step, g.guessed_class, g.text)
                      for g in session.scalars(select(Guess).where(Guess.request_id.in_(part)))})
    return found


def insert_guesses(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add guesses (``Guess`` columns) and count those with text on their items; returns how many."""
    session.add_all(Guess(**row) for row in rows)
    counts: dict[int, int] = defaultdict(int)
    for row in rows:
        counts[row["item_id"]] += bool(row["text"])
    for item_id, count in counts.items():  # in SQL: the game may count labels at the same time
        if count:
            session.execute(update(Item).where(Item.id == item_id).values(label_count=Item.label_count + count))
    return len(rows)


__all__ = ["GuessKey", "insert_guesses", "item_images", "stored_guesses"]
