"""Writing a new study in batches, each its own short transaction.

One transaction for a whole large study would hold the database's write lock (SQLite) for as long
as the inserts take, and a live game on the same database would wait or fail meanwhile. Instead::

    with study_in_batches(store, Study(name=..., ...)) as writer:
        for chunk in chunks:
            with writer.batch() as session:
                session.add_all(...)          # committed when the block ends

The study row is stored first, marked unfinished (``Study.building_at``: the time of its latest
batch); nothing serves, exports or analyses it until the last batch is in and the mark is
cleared. On any error or interrupt its rows are removed again and the error goes on. A creation
that was killed outright leaves an unfinished study behind: once it has made no progress for
:data:`STALE_AFTER`, a new creation of the same name removes it and starts over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.models import Media, Study

STALE_AFTER = timedelta(minutes=10)  # an unfinished study without a new batch for this long was abandoned
REMOVE_CHUNK = 500  # media rows (with the rows that use them) removed per transaction


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)  # SQLite drops the zone


def is_abandoned(study: Study) -> bool:
    """True for an unfinished study whose creation made no progress for :data:`STALE_AFTER`."""
    return study.building_at is not None and _now() - _aware(study.building_at) > STALE_AFTER


def name_in_use(session: Session, name: str) -> bool:
    """True when a study called ``name`` exists or is being created (an abandoned one does not count)."""
    found = session.scalars(select(Study).where(Study.name == name)).first()
    return found is not None and not is_abandoned(found)


def check_ready(study: Study) -> Study:
    """``study`` when it is complete; a :class:`NetrevealError` while it is still being written."""
    if not study.ready:
        raise NetrevealError(f"study {study.name!r} is not complete yet: it is being created, or its creation "
                             f"was interrupted (a new `study create --name {study.name}` replaces it after "
                             f"{int(STALE_AFTER.total_seconds() // 60)} minutes without progress)")
    return study


def remove_study(store: Store, study_id: int) -> None:
    """Delete a study and every row of it, a chunk of pictures (with the rows using them) per transaction."""
    while True:
        with store.session() as session:
            ids = session.scalars(select(Media.id).where(Media.study_id == study_id).limit(REMOVE_CHUNK)).all()
            if not ids:
                session.execute(delete(Study).where(Study.id == study_id))
                return
            session.execute(delete(Media).where(Media.id.in_(ids)))


class StudyWriter:
    """Stores one unfinished study batch by batch (see :func:`study_in_batches`)."""

    def __init__(self, store: Store, study_id: int):
        self.store = store
        self.study_id = study_id

    @contextmanager
    def batch(self) -> Iterator[Session]:
        """A session for one batch of the study's rows, committed (with the progress time) at the end."""
        with self.store.session() as session:
            yield session
            session.flush()
            session.execute(update(Study).where(Study.id == self.study_id).values(building_at=_now()))

    def finish(self) -> None:
        with self.store.session() as session:
            session.execute(update(Study).where(Study.id == self.study_id).values(building_at=None))


def _start(store: Store, study: Study) -> int:
    """Store ``study`` unfinished (replacing an abandoned one of its name); returns its id."""
    with store.session() as session:
        found = session.scalars(select(Study).where(Study.name == study.name)).first()
        if found is not None and not is_abandoned(found):
            raise NetrevealError(f"study {study.name!r} already exists")
        abandoned = None if found is None else found.id
    if abandoned is not None:
        remove_study(store, abandoned)
    study.building_at = _now()
    try:
        with store.session() as session:
            session.add(study)
            session.flush()
            return int(study.id)
    except sa_exc.IntegrityError as err:  # another process took the name meanwhile
        raise NetrevealError(f"study {study.name!r} already exists") from err


@contextmanager
def study_in_batches(store: Store, study: Study) -> Iterator[StudyWriter]:
    """Store ``study`` unfinished, yield a :class:`StudyWriter` for its rows, then mark it complete.

    On any error (or Ctrl+C) inside the block, the study's rows are removed and the error goes on.
    An existing name (complete, or being created) is a :class:`NetrevealError` before anything is
    written.
    """
    writer = StudyWriter(store, _start(store, study))
    try:
        yield writer
        writer.finish()
    except BaseException as err:
        try:
            remove_study(store, writer.study_id)
        except sa_exc.SQLAlchemyError as cleanup:  # the database may be the problem: the next creation replaces it
            err.add_note(f"the unfinished study {study.name!r} could not be removed ({cleanup.__class__.__name__}); "
                         f"a new creation of that name replaces it after {STALE_AFTER}")
        raise
