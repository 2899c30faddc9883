"""The reveal game (DESIGN §2): rounds, guesses, points, leaderboard and personal stats.

Rules
-----
A round shows one item (an INV cluster map of one image at one layer): the image is revealed only
where the map is strongest, first at step 1 (2% of the pixels), up to step 6 (30%). At each step the
player may

* guess: pick a class among the study's classes and type what they see (the label, required). A
  correct class wins the round; a wrong class at steps 1-5 moves the round to the next step (the
  label is kept); a wrong class at step 6 loses it;
* show more: go to the next step without guessing (not possible at step 6);
* resign: give up the round (no points).

Points favour early correct guesses: a win at step 1..6 scores 100, 70, 50, 35, 20, 10; losses and
resignations score 0. The correct class is the image's true class when the study knows it, else the
model's predicted class.

Assignment: a new round gets the item with the fewest labels among those the player has never had
(ties: the fewest rounds in progress, then the lowest id). A player never gets an item twice (the
database enforces it with a unique key on games(player_id, item_id)) and has one round at a time:
asking for a round while one is open returns the open one.

Guesses carry a client-chosen ``request_id`` (a UUID): a retried submission is stored once and
answered with the same acknowledgement. Functions raise :class:`GameError` (with an HTTP-like
``status``) for rejected requests and never store anything for them; they flush but do not commit.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from netreveal.errors import NetrevealError
from netreveal.store.guess_writes import open_at_seen_step, write_guess
from netreveal.store.models import (
    REVEAL_PERCENTS,
    Account,
    Game,
    Guess,
    Item,
    RevealFrame,
    Study,
    StudyImage,
)
from netreveal.store.throttles import as_utc, recent_guess_columns

STEPS = len(REVEAL_PERCENTS)
POINTS = (100, 70, 50, 35, 20, 10)  # points for a win at step 1..6
TEXT_MAX = 100
LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,4})?")
_CANDIDATES = 50  # items looked at when breaking label-count ties by rounds in progress


class GameError(NetrevealError):
    """A rejected game request; ``status`` is the HTTP status the web app answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GuessAck:
    """What a stored guess is acknowledged with; a retry with the same request_id gets the same."""

    request_id: str
    guess_id: int
    game_id: int
    item_id: int
    step: int
    guessed_class: str
    correct: bool
    outcome: str | None  # "win", "loss" or None (the round goes on)
    points: int
    next_step: int
    answer: str | None  # the correct class, once the round is over

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # flat: no need for asdict's deep copy


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    username: str
    points: int
    wins: int
    rounds: int


@dataclass
class PlayerStats:
    rounds: int = 0
    wins: int = 0
    losses: int = 0
    resigns: int = 0
    points: int = 0
    labels: int = 0
    mean_win_step: float | None = None
    rank: int | None = None
    players: int = 0
    recent: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def points_for(step: int, correct: bool) -> int:
    """Points of a guess at reveal ``step`` (1-based): POINTS[step-1] when correct, else 0."""
    return POINTS[step - 1] if correct else 0


def clean_text(text: Any) -> str:
    """The label as stored: NFC, spaces collapsed, 1-100 characters of letters, digits, punctuation,
    symbols and spaces. GameError (400) otherwise (control or invisible formatting characters too)."""
    if not isinstance(text, str):
        raise GameError("text must be a string")
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if not text:
        raise GameError("type what you see (the text is empty)")
    if len(text) > TEXT_MAX:
        raise GameError(f"text is too long ({len(text)} characters, at most {TEXT_MAX})")
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] not in "LMNPS" and category != "Zs":
            raise GameError(f"text has a character that is not allowed (U+{ord(ch):04X})")
    return text


def check_language(language: Any) -> str:
    """A language tag such as ``en`` or ``pt-BR`` (GameError otherwise)."""
    if language is None or language == "":
        return "en"
    if not isinstance(language, str) or len(language) > 8 or not LANGUAGE_RE.fullmatch(language):
        raise GameError("language must be a tag such as 'en' or 'pt-BR'")
    return language


def check_request_id(request_id: Any) -> str:
    """The canonical (lower-case, hyphenated) form of a UUID request id; GameError otherwise."""
    if not isinstance(request_id, str) or len(request_id) > 64:
        raise GameError("request_id must be a UUID")
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        raise GameError("request_id must be a UUID") from None


def answer_of(image: StudyImage) -> str:
    """The class a round is won with: the true class when known, else the model's prediction."""
    return image.true_class if image.true_class else image.predicted_class


def _now() -> datetime:
    return datetime.now(timezone.utc)


# Statements of the busy calls, built once: building one costs more CPU than running it.
_GAME = (
    select(Game, Item, StudyImage).join(Item, Item.id == Game.item_id)
    .join(StudyImage, StudyImage.id == Item.image_id)
    .where(Game.id == bindparam("game_id"), Game.player_id == bindparam("player_id"),
           Item.study_id == bindparam("study_id"))
)
_OPEN_GAME = (
    select(Game).join(Item, Item.id == Game.item_id)
    .where(Game.player_id == bindparam("player_id"), Game.outcome.is_(None), Item.study_id == bindparam("study_id"))
    .order_by(Game.id).limit(1)
)


def _next_item_statement():
    played = exists().where(Game.player_id == bindparam("player_id"), Game.item_id == Item.id)
    has_frame = exists().where(RevealFrame.item_id == Item.id, RevealFrame.step == 1)
    candidates = (
        select(Item.id.label("id"), Item.label_count.label("labels"))
        .where(Item.study_id == bindparam("study_id"), ~played, has_frame)
        .order_by(Item.label_count, Item.id).limit(_CANDIDATES).subquery()
    )
    in_progress = (
        select(func.count(Game.id)).where(Game.item_id == candidates.c.id, Game.outcome.is_(None))
        .scalar_subquery()
    )
    return (select(Item).join(candidates, candidates.c.id == Item.id)
            .order_by(candidates.c.labels, in_progress, candidates.c.id).limit(1))


_NEXT_ITEM = _next_item_statement()
_REVEAL = update(Game.__table__).where(*open_at_seen_step()).values(step=Game.step + 1)
_RESIGN = (update(Game.__table__).where(Game.id == bindparam("round_id"), Game.outcome.is_(None))
           .values(outcome="resign", points=0))  # and finished_at, from the parameters


def get_game(session: Session, study: Study, player: Account, game_id: Any) -> Game:
    """The player's round ``game_id`` in ``study``; GameError (404) for any other id."""
    if not isinstance(game_id, int) or isinstance(game_id, bool):
        raise GameError("no such round", status=404)
    # one query; the item and image land in the session's identity map for what follows
    found = session.execute(_GAME, {"game_id": game_id, "player_id": player.id, "study_id": study.id}).first()
    if found is None:
        raise GameError("no such round", status=404)
    return found[0]


def open_game(session: Session, study: Study, player: Account) -> Game | None:
    """The player's unfinished round in ``study``, if any."""
    return session.scalars(_OPEN_GAME, {"player_id": player.id, "study_id": study.id}).first()


def next_item(session: Session, study: Study, player: Account) -> Item | None:
    """The item a new round of ``player`` gets (fewest labels first, then fewest rounds in progress,
    then lowest id, among the first few by labels; never one they had), or None."""
    return session.scalars(_NEXT_ITEM, {"player_id": player.id, "study_id": study.id}).first()


def start_round(session: Session, study: Study, player: Account) -> Game:
    """The player's open round, or a new one on the next item. GameError (409) when none is left.

    Two requests racing for the same player and item meet the unique key; the loser rolls the
    session back and returns the round the winner created.
    """
    for _attempt in range(5):
        game = open_game(session, study, player)
        if game is not None:
            return game
        item = next_item(session, study, player)
        if item is None:
            raise GameError("you have played every picture of this study: thank you!", status=409)
        game = Game(player_id=player.id, item_id=item.id, step=1, outcome=None, points=0, started_at=_now())
        session.add(game)
        try:
            session.flush()
            return game
        except IntegrityError:
            session.rollback()
    raise GameError("could not start a round, try again", status=409)


def reveal_more(session: Session, game: Game, from_step: int | None = None) -> Game:
    """Go to the next reveal step. ``from_step`` makes it idempotent: asking again from the same
    step after it already moved on changes nothing. GameError (409) when over or at the last step."""
    if from_step is not None and from_step + 1 == game.step:
        return game
    if game.outcome is not None:
        raise GameError("this round is over", status=409)
    if from_step is not None and from_step != game.step:
        raise GameError(f"the round is at step {game.step}", status=409)
    if game.step >= STEPS:
        raise GameError("everything there is to see is shown: guess or resign", status=409)
    step = game.step
    result = session.connection().execute(_REVEAL, {"round_id": game.id, "seen_step": step})
    if result.rowcount != 1:
        session.rollback()
        raise GameError("the round changed meanwhile: reload", status=409)
    set_committed_value(game, "step", step + 1)  # what the UPDATE wrote, without reading it back
    return game


def resign(session: Session, game: Game) -> Game:
    """Give up the round (no points). Resigning a resigned round again changes nothing."""
    if game.outcome == "resign":
        return game
    if game.outcome is not None:
        raise GameError("this round is over", status=409)
    finished = _now()
    result = session.connection().execute(_RESIGN, {"round_id": game.id, "finished_at": finished})
    if result.rowcount != 1:
        session.rollback()
        raise GameError("the round changed meanwhile: reload", status=409)
    for key, value in (("outcome", "resign"), ("points", 0), ("finished_at", finished)):
        set_committed_value(game, key, value)
    return game


# A stored guess as its acknowledgement needs it, with the answer of its round.
_STORED_GUESS = (Guess.id.label("guess_id"), Guess.request_id, Guess.game_id, Guess.item_id, Guess.player_id,
                 Guess.step, Guess.guessed_class, Guess.correct, StudyImage.true_class, StudyImage.predicted_class)
# Statements of a guess, built once (building a statement costs more CPU than running it).
_REPLAY = (select(*_STORED_GUESS).join(Item, Item.id == Guess.item_id).join(StudyImage, StudyImage.id == Item.image_id)
           .where(Guess.request_id == bindparam("request_id")))
_GUESS_ROUND = (  # the player's round with the answer, and the guess stored under the request id (or NULLs)
    select(Game.step.label("round_step"), Game.outcome, Game.item_id.label("round_item"), *_STORED_GUESS)
    .select_from(Game).join(Item, Item.id == Game.item_id).join(StudyImage, StudyImage.id == Item.image_id)
    .outerjoin(Guess, Guess.request_id == bindparam("request_id"))
    .where(Game.id == bindparam("game_id"), Game.player_id == bindparam("player_id"),
           Item.study_id == bindparam("study_id"))
)
_GUESS_ROUND_COUNTED = _GUESS_ROUND.add_columns(*recent_guess_columns())  # and the player's recent guesses


def _ack(stored: Row) -> GuessAck:
    """The acknowledgement of a stored guess (a row of ``_STORED_GUESS``)."""
    outcome = "win" if stored.correct else ("loss" if stored.step >= STEPS else None)
    return GuessAck(request_id=stored.request_id, guess_id=stored.guess_id, game_id=stored.game_id,
                    item_id=stored.item_id, step=stored.step, guessed_class=stored.guessed_class,
                    correct=bool(stored.correct), outcome=outcome, points=points_for(stored.step, stored.correct),
                    next_step=stored.step if outcome is not None else stored.step + 1,
                    answer=answer_of(stored) if outcome is not None else None)


def _check_replay(stored: Row, player: Account, game_id: int | None) -> None:
    if stored.player_id != player.id or (game_id is not None and stored.game_id != game_id):
        raise GameError("request_id was already used for another guess", status=409)


def replayed_guess(session: Session, player: Account, request_id: str, game_id: int | None = None) -> GuessAck | None:
    """The acknowledgement of an already stored guess with ``request_id``, or None.

    GameError (409) when the id was used by another player or for another round."""
    stored = session.execute(_REPLAY, {"request_id": request_id}).first()
    if stored is None:
        return None
    _check_replay(stored, player, game_id)
    return _ack(stored)


def submit_guess(session: Session, study: Study, player: Account, game_id: Any, *, request_id: Any,
                 guessed_class: Any, text: Any, language: Any = "en", step: int | None = None,
                 recent_since: datetime | None = None,
                 before_store: Callable[[int, datetime | None], None] | None = None) -> tuple[GuessAck, bool]:
    """Store a guess on the player's round: (acknowledgement, replayed).

    ``replayed`` is True when ``request_id`` was stored before (nothing new is stored then). ``step``,
    when given, is the step the player saw: a guess made on a stale view is refused (409).
    ``before_store(count, oldest)`` runs once the guess is known to be new and valid, just before it
    is written, with how many guesses the player stored after ``recent_since`` and when the oldest
    of them was (0 and None without ``recent_since``); the web app checks the player's rate limit
    there and may raise to refuse the guess.

    A new guess costs one query (the round, its answer, any guess stored under ``request_id`` and
    the player's recent guesses) and three writes (the round, the guess, the item's label count:
    one statement on PostgreSQL, three on SQLite), not committed.
    """
    request_id = check_request_id(request_id)
    if not isinstance(game_id, int) or isinstance(game_id, bool):
        raise GameError("no such round", status=404)
    values = {"request_id": request_id, "game_id": game_id, "player_id": player.id, "study_id": study.id}
    if recent_since is None:
        found = session.execute(_GUESS_ROUND, values).first()
    else:
        found = session.execute(_GUESS_ROUND_COUNTED, {**values, "recent_since": recent_since}).first()
    if found is None:
        replayed_guess(session, player, request_id, game_id)  # 409 when another player's guess has the id
        raise GameError("no such round", status=404)
    if found.guess_id is not None:  # stored before: this is a retry
        _check_replay(found, player, game_id)
        return _ack(found), True
    if not isinstance(guessed_class, str) or guessed_class not in study.classes:
        raise GameError("guessed_class must be one of the study's classes")
    text = clean_text(text)
    language = check_language(language)
    current = found.round_step
    if found.outcome is not None or (step is not None and step != current):
        ack = replayed_guess(session, player, request_id, game_id)  # a concurrent retry got there first
        if ack is not None:
            return ack, True
        if found.outcome is not None:
            raise GameError("this round is over", status=409)
        raise GameError(f"the round is at step {current}: reload", status=409)
    if before_store is not None:
        counted = recent_since is not None
        before_store(found.recent_guesses if counted else 0, as_utc(found.oldest_recent) if counted else None)

    answer = answer_of(found)
    correct = guessed_class == answer
    outcome = "win" if correct else ("loss" if current >= STEPS else None)
    now = _now()
    moved = {"step": current if outcome else current + 1, "outcome": outcome, "points": points_for(current, correct),
             "finished_at": now if outcome else None}
    connection = session.connection()  # the session's transaction; plain statements, no unit of work
    guess = {"request_id": request_id, "game_id": game_id, "player_id": player.id, "player_name": player.username,
             "step": current, "guessed_class": guessed_class, "text": text, "language": language,
             "correct": correct, "source": "game", "created_at": now}
    try:
        guess_id = write_guess(connection, game_id, current, found.round_item, moved, guess)
        if guess_id is None:
            raise _Moved()
    except (_Moved, IntegrityError):
        session.rollback()
        ack = replayed_guess(session, player, request_id, game_id)  # a concurrent retry stored it first
        if ack is not None:
            return ack, True
        raise GameError("the round changed meanwhile: reload", status=409) from None
    game = session.identity_map.get(identity_key(Game, game_id))
    if game is not None:  # the caller holds the round: show it what the UPDATE wrote
        for key, value in moved.items():
            set_committed_value(game, key, value)
    return GuessAck(request_id=request_id, guess_id=guess_id, game_id=game_id, item_id=found.round_item, step=current,
                    guessed_class=guessed_class, correct=correct, outcome=outcome, points=moved["points"],
                    next_step=moved["step"], answer=answer if outcome is not None else None), False


class _Moved(Exception):
    pass


_ROUND_FRAME = (
    select(RevealFrame.percent, RevealFrame.media_id, StudyImage.media_id, StudyImage.true_class,
           StudyImage.predicted_class)
    .join(Item, Item.id == RevealFrame.item_id).join(StudyImage, StudyImage.id == Item.image_id)
    .where(RevealFrame.item_id == bindparam("item_id"), RevealFrame.step == bindparam("step"))
)
_ROUND_GUESSES = (select(Guess.step, Guess.guessed_class, Guess.text, Guess.correct)
                  .where(Guess.game_id == bindparam("game_id")).order_by(Guess.id))


def round_state(session: Session, study: Study, game: Game) -> dict[str, Any]:
    """What the game page shows of a round: step, frame media, outcome, points and (when over) the answer."""
    found = session.execute(_ROUND_FRAME, {"item_id": game.item_id, "step": game.step}).first()
    if found is None:
        raise GameError("this picture has no reveal frame at that step", status=404)
    percent, frame_media, image_media, true_class, predicted = found
    over = game.outcome is not None
    guesses = []
    if over or game.step > 1:  # a round still at step 1 has no guess yet (a guess ends it or moves it on)
        guesses = [
            {"step": step, "guessed_class": guessed_class, "text": text, "correct": correct}
            for step, guessed_class, text, correct in session.execute(_ROUND_GUESSES, {"game_id": game.id})
        ]
    return {
        "game_id": game.id, "item_id": game.item_id, "step": game.step, "steps": STEPS, "percent": percent,
        "frame_media_id": frame_media, "outcome": game.outcome, "points": game.points,
        "can_reveal": not over and game.step < STEPS, "classes": list(study.classes),
        "answer": (true_class or predicted) if over else None, "image_media_id": image_media if over else None,
        "guesses": guesses,
    }


def _finished_games(study: Study):
    return and_(Game.item_id == Item.id, Item.study_id == study.id, Game.outcome.is_not(None))


def leaderboard(session: Session, study: Study, limit: int = 20) -> list[LeaderRow]:
    """Players of ``study`` by points (then wins, then name), finished rounds only. Only accounts
    whose role is player are ranked (an annotator or admin who once played is left out)."""
    points = func.sum(Game.points)
    wins = func.sum(case((Game.outcome == "win", 1), else_=0))
    rows = session.execute(
        select(Account.username, points, wins, func.count(Game.id))
        .join(Game, Game.player_id == Account.id).join(Item, _finished_games(study))
        .where(Account.role == "player")
        .group_by(Account.id, Account.username)
        .order_by(points.desc(), wins.desc(), Account.username).limit(limit)
    ).all()
    return [LeaderRow(rank=i + 1, username=u, points=int(p or 0), wins=int(w or 0), rounds=int(n))
            for i, (u, p, w, n) in enumerate(rows)]


def player_stats(session: Session, study: Study, player: Account, recent: int = 10) -> PlayerStats:
    """The player's rounds, wins, losses, resignations, points, labels, mean winning step and rank."""
    stats = PlayerStats()
    rows = session.execute(
        select(Game.outcome, func.count(Game.id), func.sum(Game.points), func.avg(Game.step))
        .join(Item, _finished_games(study)).where(Game.player_id == player.id).group_by(Game.outcome)
    ).all()
    for outcome, n, points, mean_step in rows:
        stats.rounds += int(n)
        stats.points += int(points or 0)
        if outcome == "win":
            stats.wins, stats.mean_win_step = int(n), float(mean_step)
        elif outcome == "loss":
            stats.losses = int(n)
        elif outcome == "resign":
            stats.resigns = int(n)
    stats.labels = session.scalar(
        select(func.count(Guess.id)).join(Item, Item.id == Guess.item_id)
        .where(Guess.player_id == player.id, Item.study_id == study.id)
    ) or 0
    totals = (  # ranked among player accounts, as on the leaderboard
        select(Game.player_id, func.sum(Game.points).label("points"))
        .join(Item, _finished_games(study)).join(Account, Account.id == Game.player_id)
        .where(Account.role == "player").group_by(Game.player_id).subquery()
    )
    stats.players = session.scalar(select(func.count()).select_from(totals)) or 0
    if stats.rounds and player.role == "player":
        ahead = select(func.count()).select_from(totals).where(totals.c.points > stats.points)
        stats.rank = 1 + (session.scalar(ahead) or 0)
    stats.recent = [
        {"text": g.text, "guessed_class": g.guessed_class, "correct": g.correct, "step": g.step}
        for g in session.scalars(
            select(Guess).join(Item, Item.id == Guess.item_id)
            .where(Guess.player_id == player.id, Item.study_id == study.id)
            .order_by(Guess.id.desc()).limit(recent)
        )
    ]
    return stats
