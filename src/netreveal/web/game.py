"""The reveal game over HTTP: the play, leaderboard, stats and how-to-play pages, and the JSON calls
the play page makes. Only player accounts play and score (annotators and admins get 403 on every
game route and never appear on the leaderboard). The rules live in :mod:`netreveal.store.game`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from netreveal.store import game as rules
from netreveal.store.models import REVEAL_PERCENTS, Account, Study
from netreveal.web.deps import (
    check_csrf,
    current_account,
    db,
    home_for,
    render,
    require_player,
    study,
)
from netreveal.web.params import DbId

router = APIRouter()
NOT_A_PLAYER = ("annotator and admin accounts do not play the reveal game or score: "
                "only player accounts (those made by signing up) play")
player = require_player(NOT_A_PLAYER)


def reveal_study(current: Study = Depends(study)) -> Study:
    """The served study when it has a reveal game (an evaluation study has none: 404)."""
    if current.kind != "reveal":
        raise HTTPException(status_code=404, detail="this study has no reveal game")
    return current


class GuessIn(BaseModel):
    request_id: str = Field(max_length=64)
    guessed_class: str = Field(max_length=80)
    text: str = Field(max_length=400)
    language: str | None = Field(default=None, max_length=8)
    step: int | None = Field(default=None, ge=1, le=rules.STEPS)


class RevealIn(BaseModel):
    from_step: int | None = Field(default=None, ge=1, le=rules.STEPS)


def _state(session: Session, current: Study, game) -> dict[str, Any]:
    state = rules.round_state(session, current, game)
    state["frame_url"] = f"/media/{state['frame_media_id']}.png"
    state["image_url"] = f"/media/{state['image_media_id']}.png" if state["image_media_id"] else None
    return state


# ---- pages -------------------------------------------------------------------------------------

@router.get("/")
def home(request: Request, session: Session = Depends(db), account: Account | None = Depends(current_account)):
    served = session.get(Study, request.app.state.study_id)
    kind = served.kind if served is not None else None
    if account is not None:  # a player's home in an evaluation study is the study
        return RedirectResponse(home_for(account.role, kind), status_code=303)
    if kind == "evaluation":  # the study takes the game's place
        return RedirectResponse("/study", status_code=303)
    return render(request, "home.html", {"percents": REVEAL_PERCENTS, "points": rules.POINTS})


@router.get("/play")
def play_page(request: Request, account: Account = Depends(player), current: Study = Depends(study)):
    if current.kind == "evaluation":  # where logging in leads: the study takes the game's place
        return RedirectResponse("/study", status_code=303)
    return render(request, "play.html", {"classes": current.classes, "steps": rules.STEPS})


@router.get("/leaderboard")
def leaderboard_page(request: Request, session: Session = Depends(db), current: Study = Depends(reveal_study),
                     account: Account | None = Depends(current_account)):
    return render(request, "leaderboard.html", {"rows": rules.leaderboard(session, current, limit=50)})


@router.get("/stats")
def stats_page(request: Request, session: Session = Depends(db), account: Account = Depends(player),
               current: Study = Depends(reveal_study)):
    return render(request, "stats.html", {"stats": rules.player_stats(session, current, account)})


@router.get("/how-to-play")
def how_to_play(request: Request, account: Account | None = Depends(current_account)):
    return render(request, "howto.html", {"percents": REVEAL_PERCENTS, "points": rules.POINTS})


# ---- JSON --------------------------------------------------------------------------------------

@router.post("/api/rounds", dependencies=[Depends(check_csrf)])
def api_start_round(session: Session = Depends(db), account: Account = Depends(player),
                    current: Study = Depends(reveal_study)):
    """The player's open round, or a new one on the item with the fewest labels they never had."""
    game = rules.start_round(session, current, account)
    return _state(session, current, game)


@router.get("/api/rounds/{game_id:int}")
def api_round(game_id: DbId, session: Session = Depends(db), account: Account = Depends(player),
              current: Study = Depends(reveal_study)):
    return _state(session, current, rules.get_game(session, current, account, game_id))


@router.post("/api/rounds/{game_id:int}/guesses", dependencies=[Depends(check_csrf)])
def api_guess(request: Request, game_id: DbId, body: GuessIn, session: Session = Depends(db),
              account: Account = Depends(player), current: Study = Depends(reveal_study)):
    """Store a guess (idempotent by ``request_id``): the acknowledgement, the same on every retry."""
    ack, replayed = rules.submit_guess(
        session, current, account, game_id, request_id=body.request_id, guessed_class=body.guessed_class,
        text=body.text, language=body.language, step=body.step,
        before_store=lambda: request.app.state.limiter.check_guess(session, account.id))
    return JSONResponse(ack.to_dict(), headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.post("/api/rounds/{game_id:int}/reveal", dependencies=[Depends(check_csrf)])
def api_reveal(game_id: DbId, body: RevealIn | None = None, session: Session = Depends(db),
               account: Account = Depends(player), current: Study = Depends(reveal_study)):
    """Show more: the next reveal step (``from_step`` makes a retry harmless). Not rate limited:
    the rules allow at most five per round."""
    game = rules.get_game(session, current, account, game_id)
    game = rules.reveal_more(session, game, body.from_step if body else None)
    return _state(session, current, game)


@router.post("/api/rounds/{game_id:int}/resign", dependencies=[Depends(check_csrf)])
def api_resign(game_id: DbId, session: Session = Depends(db), account: Account = Depends(player),
               current: Study = Depends(reveal_study)):
    game = rules.resign(session, rules.get_game(session, current, account, game_id))
    return _state(session, current, game)


@router.get("/api/leaderboard")
def api_leaderboard(session: Session = Depends(db), current: Study = Depends(reveal_study)):
    return [asdict(row) for row in rules.leaderboard(session, current, limit=50)]


@router.get("/api/stats")
def api_stats(session: Session = Depends(db), account: Account = Depends(player), current: Study = Depends(reveal_study)):
    return rules.player_stats(session, current, account).to_dict()
