"""The reveal game over HTTP: the play, leaderboard, stats and how-to-play pages, and the JSON calls
the play page makes. Only player accounts play and score (annotators and admins get 403 on every
game route and never appear on the leaderboard). The rules live in :mod:`netreveal.store.game`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from netreveal.store import game as rules
from netreveal.store.models import REVEAL_PERCENTS, Account, Study
from netreveal.web.calls import Call, call_dependency
from netreveal.web.deps import current_account, db, home_for, render, require_player, reveal_study, study
from netreveal.web.params import DbId

router = APIRouter()
NOT_A_PLAYER = ("annotator and admin accounts do not play the reveal game or score: "
                "only player accounts (those made by signing up) play")
player = require_player(NOT_A_PLAYER)


class GuessIn(BaseModel):
    request_id: str = Field(max_length=64)
    guessed_class: str = Field(max_length=80)
    text: str = Field(max_length=400)
    language: str | None = Field(default=None, max_length=8)
    step: int | None = Field(default=None, ge=1, le=rules.STEPS)


class RevealIn(BaseModel):
    from_step: int | None = Field(default=None, ge=1, le=rules.STEPS)


def _state(session: Session, current: Study, game) -> JSONResponse:
    """A round's state as the JSON answer; it holds only JSON types, so FastAPI's encoder pass is
    not needed."""
    state = rules.round_state(session, current, game)
    state["frame_url"] = f"/media/{state['frame_media_id']}.png"
    state["image_url"] = f"/media/{state['image_media_id']}.png" if state["image_media_id"] else None
    return JSONResponse(state)


# ---- pages -------------------------------------------------------------------------------------

@router.get("/")
def home(request: Request, session: Session = Depends(db),
         account: Account | None = Depends(current_account)) -> Response:
    served = session.get(Study, request.app.state.study_id)
    kind = served.kind if served is not None else None
    if account is not None:  # a player's home in an evaluation study is the study
        return RedirectResponse(home_for(account.role, kind), status_code=303)
    if kind == "evaluation":  # the study takes the game's place
        return RedirectResponse("/study", status_code=303)
    return render(request, "home.html", {"percents": REVEAL_PERCENTS, "points": rules.POINTS})


@router.get("/play")
def play_page(request: Request, account: Account = Depends(player), current: Study = Depends(study)) -> Response:
    if current.kind == "evaluation":  # where logging in leads: the study takes the game's place
        return RedirectResponse("/study", status_code=303)
    return render(request, "play.html", {"classes": current.classes, "steps": rules.STEPS})


@router.get("/leaderboard")
def leaderboard_page(request: Request, session: Session = Depends(db), current: Study = Depends(reveal_study),
                     account: Account | None = Depends(current_account)) -> HTMLResponse:
    return render(request, "leaderboard.html", {"rows": rules.leaderboard(session, current, limit=50)})


@router.get("/stats")
def stats_page(request: Request, session: Session = Depends(db), account: Account = Depends(player),
               current: Study = Depends(reveal_study)) -> HTMLResponse:
    return render(request, "stats.html", {"stats": rules.player_stats(session, current, account)})


@router.get("/how-to-play", dependencies=[Depends(reveal_study)])
def how_to_play(request: Request, account: Account | None = Depends(current_account)) -> HTMLResponse:
    return render(request, "howto.html", {"percents": REVEAL_PERCENTS, "points": rules.POINTS})


# ---- JSON --------------------------------------------------------------------------------------

# The calls a player makes while playing take a Call: one worker-thread hop instead of one per
# dependency (see web/calls.py).
playing = call_dependency(csrf=True, kind="reveal", players_only=NOT_A_PLAYER)  # state-changing: CSRF checked
looking = call_dependency(csrf=False, kind="reveal", players_only=NOT_A_PLAYER)


@router.post("/api/rounds", response_model=None)
async def api_start_round(call: Call = Depends(playing)) -> JSONResponse:
    """The player's open round, or a new one on the item with the fewest labels they never had."""
    return await call.run(lambda session, current, account: _state(
        session, current, rules.start_round(session, current, account)))


@router.get("/api/rounds/{game_id:int}", response_model=None)
async def api_round(game_id: DbId, call: Call = Depends(looking)) -> JSONResponse:
    return await call.run(lambda session, current, account: _state(
        session, current, rules.get_game(session, current, account, game_id)))


@router.post("/api/rounds/{game_id:int}/guesses")
async def api_guess(request: Request, game_id: DbId, body: GuessIn, call: Call = Depends(playing)) -> JSONResponse:
    """Store a guess (idempotent by ``request_id``): the acknowledgement, the same on every retry."""
    limiter = request.app.state.limiter
    since = limiter.guesses_since()

    def guess(session: Session, current: Study, account: Account) -> tuple[Any, bool]:
        return rules.submit_guess(
            session, current, account, game_id, request_id=body.request_id, guessed_class=body.guessed_class,
            text=body.text, language=body.language, step=body.step, recent_since=since,
            before_store=limiter.check_guesses)

    ack, replayed = await call.run(guess)
    return JSONResponse(ack.to_dict(), headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.post("/api/rounds/{game_id:int}/reveal", response_model=None)
async def api_reveal(game_id: DbId, body: RevealIn | None = None, call: Call = Depends(playing)) -> JSONResponse:
    """Show more: the next reveal step (``from_step`` makes a retry harmless). Not rate limited:
    the rules allow at most five per round."""

    def reveal(session: Session, current: Study, account: Account) -> JSONResponse:
        game = rules.get_game(session, current, account, game_id)
        return _state(session, current, rules.reveal_more(session, game, body.from_step if body else None))

    return await call.run(reveal)


@router.post("/api/rounds/{game_id:int}/resign", response_model=None)
async def api_resign(game_id: DbId, call: Call = Depends(playing)) -> JSONResponse:
    return await call.run(lambda session, current, account: _state(
        session, current, rules.resign(session, rules.get_game(session, current, account, game_id))))


@router.get("/api/leaderboard", response_model=None)
def api_leaderboard(session: Session = Depends(db), current: Study = Depends(reveal_study)) -> list[dict[str, Any]]:
    return [asdict(row) for row in rules.leaderboard(session, current, limit=50)]


@router.get("/api/stats", response_model=None)
def api_stats(session: Session = Depends(db), account: Account = Depends(player),
              current: Study = Depends(reveal_study)) -> dict[str, Any]:
    return rules.player_stats(session, current, account).to_dict()
