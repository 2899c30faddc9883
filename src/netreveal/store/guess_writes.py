"""The writes of a new guess in the reveal game: move the round, store the guess, count the label.

On PostgreSQL they are one statement (data-modifying CTEs): two round trips fewer than three
statements on the game's busiest call. SQLite has no data-modifying CTEs and runs the three
statements. Either way nothing is written unless the round is still open at the step the player saw.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from netreveal.store.models import Game, Guess, Item

GUESS_COLUMNS = ("request_id", "game_id", "player_id", "player_name", "step", "guessed_class", "text", "language",
                 "correct", "source", "created_at")  # what the caller gives; item_id comes from the round
ROUND_MOVES = ("step", "outcome", "points", "finished_at")  # what a guess changes in its round

_games, _items, _guesses = Game.__table__, Item.__table__, Guess.__table__


def open_at_seen_step(round_param: str = "round_id", step_param: str = "seen_step") -> tuple:
    """WHERE terms of a change to a round: the round (parameter ``round_param``) is still open and
    at the step the player saw (parameter ``step_param``); a change that matches no row was
    overtaken by another request."""
    return (_games.c.id == bindparam(round_param), _games.c.step == bindparam(step_param),
            _games.c.outcome.is_(None))


_MOVE_ROUND = update(_games).where(*open_at_seen_step())  # SET from the parameters named after ROUND_MOVES
_ADD_GUESS = insert(_guesses)
_COUNT_LABEL = update(_items).where(_items.c.id == bindparam("label_item")).values(label_count=_items.c.label_count + 1)


def _one_statement():
    """Move the round if it is still open at the step seen; only if it moved, count the label and
    insert the guess, returning its id (no row: the round had moved). Parameters are named
    ``r_<column>`` (the round) and ``g_<column>`` (the guess): a parameter named after a column would
    become one more SET of the UPDATEs."""
    moved = (update(_games).where(*open_at_seen_step("r_id", "r_seen_step"))
             .values({name: bindparam(f"r_{name}", type_=_games.c[name].type) for name in ROUND_MOVES})
             .returning(_games.c.item_id).cte("moved"))
    counted = (update(_items).where(_items.c.id.in_(select(moved.c.item_id)))
               .values(label_count=_items.c.label_count + 1).cte("counted"))
    values = [bindparam(f"g_{name}", type_=_guesses.c[name].type) for name in GUESS_COLUMNS]
    return (insert(_guesses)
            .from_select([*GUESS_COLUMNS, "item_id"], select(*values, moved.c.item_id))
            .returning(_guesses.c.id).add_cte(counted))


_STORE_GUESS = _one_statement()  # built once: building a statement costs more CPU than running it


def write_guess(connection: Connection, round_id: int, seen_step: int, item_id: int, moves: dict[str, Any],
                guess: dict[str, Any]) -> int | None:
    """Store ``guess`` (values of GUESS_COLUMNS) on round ``round_id`` of item ``item_id``, apply
    ``moves`` (values of ROUND_MOVES) to the round and count the item's label, in the connection's
    transaction; the new guess's id, or None (nothing written) when the round is no longer open at
    ``seen_step``. IntegrityError when the request id is taken (the caller rolls back)."""
    if connection.dialect.name == "postgresql":
        stored = connection.execute(_STORE_GUESS, {
            "r_id": round_id, "r_seen_step": seen_step, **{f"r_{key}": value for key, value in moves.items()},
            **{f"g_{key}": value for key, value in guess.items()}}).first()
        return None if stored is None else stored[0]
    if connection.execute(_MOVE_ROUND, {"round_id": round_id, "seen_step": seen_step, **moves}).rowcount != 1:
        return None
    guess_id = connection.execute(_ADD_GUESS, {**guess, "item_id": item_id}).inserted_primary_key[0]
    connection.execute(_COUNT_LABEL, {"label_item": item_id})
    return guess_id
