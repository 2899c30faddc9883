"""Who may fetch which picture of the served study by ``/media/<id>.png``.

* Logged-out visitors: none.
* Admins: every picture of the study.
* Annotators: every picture of a reveal study (the naming studio and the explanation pages show
  the images and cluster maps); none of an evaluation study.
* Players, in a reveal study: only the pictures of their current round, that is their open round
  or, when none is open, the round they finished last: its reveal frames up to the round's step,
  and the round's whole image once it is over (the play page shows it with the answer right
  after the round ends). Starting the next round takes both away.
* Players in an evaluation study: none. Participants get the pictures of their current question
  by question id and anonymous letter under ``/study/api`` (:mod:`netreveal.store.evaluation_flow`),
  so a picture's id never hints at the method behind it.

Anything else is answered like a picture that does not exist (404).
"""

from __future__ import annotations

from sqlalchemy import Row, case, select
from sqlalchemy.orm import Session

from netreveal.store.models import Account, Game, Item, Media, RevealFrame, Study, StudyImage


def current_round(session: Session, study_id: int, player: Account) -> Row[tuple[int, int, str | None]] | None:
    """(item id, step, outcome) of the player's current round in the study, or None: the open
    round (the oldest if a race opened two, as the game serves it), else the last finished one."""
    is_open = Game.outcome.is_(None)
    return session.execute(
        select(Game.item_id, Game.step, Game.outcome).join(Item, Item.id == Game.item_id)
        .where(Game.player_id == player.id, Item.study_id == study_id)
        .order_by(case((is_open, 0), else_=1), case((is_open, Game.id), else_=-Game.id)).limit(1)
    ).first()


def _in_current_round(session: Session, study_id: int, player: Account, media_id: int) -> bool:
    found = current_round(session, study_id, player)
    if found is None:
        return False
    item_id, step, outcome = found
    frame = select(RevealFrame.item_id).where(
        RevealFrame.item_id == item_id, RevealFrame.step <= step, RevealFrame.media_id == media_id)
    if session.execute(frame.limit(1)).first() is not None:
        return True
    if outcome is None:
        return False
    image = select(StudyImage.id).join(Item, Item.image_id == StudyImage.id).where(
        Item.id == item_id, StudyImage.media_id == media_id)
    return session.execute(image.limit(1)).first() is not None


def media_visible(session: Session, study_id: int, account: Account | None, media_id: int) -> Media | None:
    """The media row when ``account`` may see it in the served study (see the module rules), else None."""
    if account is None or session.scalar(select(Media.study_id).where(Media.id == media_id)) != study_id:
        return None  # the picture's bytes are read only once it may be shown
    if account.role != "admin":
        study = session.get(Study, study_id)
        if study is None or study.kind != "reveal":
            return None
        if account.role != "annotator" and not _in_current_round(session, study_id, account, media_id):
            return None
    return session.get(Media, media_id)
