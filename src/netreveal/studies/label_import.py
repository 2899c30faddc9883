"""``study import-labels``: guesses with free text from a CSV file into a study.

The file is a hand-made label table or a study export's ``guesses.csv``. An export comes back
exactly: its cells are read through :func:`netreveal.csvtable.unescape_cell` (the inverse of the
export's formula defusing), and the columns that describe a guess — item, step, guessed class,
text, language, player name, correctness, time and request id — are kept as they are, so exporting
the study again writes the same cells. Row ids, rounds and accounts are those of the database the
rows go into (imported guesses belong to no round and no account; their source is ``import``).
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from netreveal.csvtable import unescape_cell
from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.label_writes import GuessKey, insert_guesses, item_images, stored_guesses
from netreveal.store.models import REVEAL_PERCENTS
from netreveal.store.records import ImageRef
from netreveal.store.studies import MAX_LANGUAGE, MAX_PLAYER, MAX_TEXT, get_study

LABEL_COLUMNS = ("item_id", "text", "step", "guessed_class")
# optional: "player" (or the export's "player_name"), "language", and from an export "correct",
# "created_at" and "request_id"
PLAYER_COLUMNS = ("player", "player_name")
MAX_REQUEST_ID = 64  # models.Guess.request_id
TRUE, FALSE = ("true", "1"), ("false", "0")


@dataclass(frozen=True)
class LabelRow:
    """One checked row of a label file (``line`` is its line number, for messages)."""

    line: int
    item_id: int
    text: str
    step: int
    guessed_class: str | None
    player: str
    language: str
    correct: bool | None  # None: decided from the guessed class
    created_at: datetime | None  # None: now
    request_id: str | None  # None: a new one


def import_labels(store: Store, name: str, csv_path: str | os.PathLike) -> int:
    """Load labels from a CSV file into study ``name`` as guesses with ``source="import"``.

    Columns: ``item_id``, ``text``, ``step`` (1..6), ``guessed_class`` (a study class, or empty),
    optional ``player`` (or ``player_name``) and ``language`` (default "en"). Without a ``correct``
    column a guess is correct when the guessed class is the image's predicted class (the class its
    cluster maps explain); an export's ``correct``, ``created_at`` and ``request_id`` are kept.

    A row whose ``request_id`` is already stored for the same guess is skipped, so importing an
    export into its own study, or the same file twice, stores nothing twice; every other row gets a
    new request id. Text may be empty only on a row with a request id (a guess without text from an
    export). Every row is checked first: one bad row is an error naming its line, and nothing is
    stored. Returns the number of guesses stored.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise NetrevealError(f"CSV file not found: {path}")
    rows = read_label_rows(path)
    try:
        with store.session() as session:
            study = get_study(session, name)
            classes = [str(c) for c in study.classes]
            images = item_images(session, study.id, [r.item_id for r in rows])
            known = stored_guesses(session, [r.request_id for r in rows if r.request_id is not None])
            guesses = []
            for row in rows:
                guess = _label_guess(path, row, images, study.name, classes)
                stored = known.get(guess["request_id"])
                if stored is None:
                    guesses.append(guess)
                elif stored == _guess_key(guess):
                    continue  # imported before
                else:
                    raise NetrevealError(f"{path}: line {row.line}: request_id {row.request_id!r} is already "
                                         f"stored for another guess")
            return insert_guesses(session, guesses)
    except IntegrityError:  # the same request ids stored by another import meanwhile
        raise NetrevealError(f"{path}: some of its guesses were stored meanwhile by another import; "
                             f"import again to skip them") from None


def _guess_key(guess: Mapping[str, Any]) -> GuessKey:
    return (guess["item_id"], guess["step"], guess["guessed_class"], guess["text"])


def read_label_rows(path: Path) -> list[LabelRow]:
    """The checked rows of the label file ``path`` (NetrevealError naming the line of a bad one)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in LABEL_COLUMNS if c not in header]
            if missing:
                raise NetrevealError(
                    f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(LABEL_COLUMNS)})"
                )
            if all(c in header for c in PLAYER_COLUMNS):
                raise NetrevealError(f"{path}: both a player and a player_name column (give one)")
            reader.fieldnames = header
            rows = []
            for row in reader:
                if None in row:
                    raise NetrevealError(f"{path}: line {reader.line_num}: more cells than columns")
                if not any((v or "").strip() for v in row.values()):
                    continue  # a blank line
                rows.append(parse_label_row(f"{path}: line {reader.line_num}", reader.line_num, row))
    except UnicodeDecodeError as err:
        raise NetrevealError(f"{path}: not UTF-8 text ({err.reason})") from err
    except csv.Error as err:
        raise NetrevealError(f"{path}: not a readable CSV file ({err})") from err
    if not rows:
        raise NetrevealError(f"{path}: no label rows")
    seen: dict[str, int] = {}
    for row in rows:
        if row.request_id is not None and seen.setdefault(row.request_id, row.line) != row.line:
            raise NetrevealError(f"{path}: line {row.line}: request_id {row.request_id!r} is also on line "
                                 f"{seen[row.request_id]}")
    return rows


def parse_label_row(where: str, line: int, row: Mapping[str, str | None]) -> LabelRow:
    """One row of a label file, checked (NetrevealError starting with ``where`` otherwise)."""
    cell = {k: unescape_cell((v or "").strip()) for k, v in row.items()}
    if any("\x00" in v for v in cell.values()):
        raise NetrevealError(f"{where}: NUL character in a cell")
    item_id = _integer(where, "item_id", cell["item_id"])
    step = _integer(where, "step", cell["step"])
    if not 1 <= step <= len(REVEAL_PERCENTS):
        raise NetrevealError(f"{where}: step {step} is not in 1..{len(REVEAL_PERCENTS)}")
    request_id = cell.get("request_id") or None
    if request_id is not None and len(request_id) > MAX_REQUEST_ID:
        raise NetrevealError(f"{where}: request_id is longer than {MAX_REQUEST_ID} characters")
    text = cell["text"]
    if not text and request_id is None:
        raise NetrevealError(f"{where}: empty text")
    if len(text) > MAX_TEXT:
        raise NetrevealError(f"{where}: text is {len(text)} characters long (at most {MAX_TEXT})")
    player = cell.get("player", cell.get("player_name", ""))
    if len(player) > MAX_PLAYER:
        raise NetrevealError(f"{where}: player name is longer than {MAX_PLAYER} characters")
    language = cell.get("language", "") or "en"
    if len(language) > MAX_LANGUAGE:
        raise NetrevealError(f"{where}: language {language!r} is longer than {MAX_LANGUAGE} characters")
    return LabelRow(line=line, item_id=item_id, text=text, step=step, guessed_class=cell["guessed_class"] or None,
                    player=player, language=language, correct=_boolean(where, cell.get("correct", "")),
                    created_at=_timestamp(where, cell.get("created_at", "")), request_id=request_id)


def _integer(where: str, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NetrevealError(f"{where}: {column} {value!r} is not a number") from None


def _boolean(where: str, value: str) -> bool | None:
    if not value:
        return None
    if value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    raise NetrevealError(f"{where}: correct {value!r} is not True or False")


def _timestamp(where: str, value: str) -> datetime | None:
    """An ISO time (UTC when it names no offset), or None for an empty cell."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise NetrevealError(f"{where}: created_at {value!r} is not an ISO date and time") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _label_guess(path: Path, row: LabelRow, images: Mapping[int, ImageRef], study: str,
                 classes: list[str]) -> dict[str, Any]:
    where = f"{path}: line {row.line}"
    if row.item_id not in images:
        raise NetrevealError(f"{where}: unknown item id {row.item_id} in study {study!r}")
    guessed = row.guessed_class
    if guessed is not None and guessed not in classes:
        raise NetrevealError(f"{where}: guessed class {guessed!r} is not a class of study {study!r}")
    correct = row.correct
    if correct is None:
        correct = guessed is not None and guessed == images[row.item_id].predicted_class
    elif correct and guessed is None:
        raise NetrevealError(f"{where}: a guess without a guessed class cannot be correct")
    extra = {"created_at": row.created_at} if row.created_at is not None else {}
    return {"item_id": row.item_id, "game_id": None, "player_id": None, "player_name": row.player, "step": row.step,
            "guessed_class": guessed, "text": row.text, "language": row.language, "correct": correct,
            "source": "import", "request_id": row.request_id or str(uuid.uuid4()), **extra}
