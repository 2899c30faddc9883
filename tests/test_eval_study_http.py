# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""An evaluation study driven through the HTTP API by simulated participants
(:func:`netreveal.userstudy.simulate_study`'s response model): the analysis of what the server
stored equals the analysis of the simulated answers, finds the planted difference between two
methods and none between two identical ones. Also what the routes refuse, what the browser may
see, and how the reveal game and the study keep to their own kind of study."""

import io
import json
import zipfile

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from evalstudy import METHODS, make_eval_study, method_of
from sqlalchemy import func, select
from webstudy import Client

from netreveal.store import accounts
from netreveal.store.evaluation import study_data
from netreveal.store.models import EvalParticipant, EvalResponse
from netreveal.studies.evaluation import analyse_study
from netreveal.userstudy import analyse, simulate_study
from netreveal.web.app import create_app

GOOD, POOR, TWIN1, TWIN2 = METHODS
INFORMATIVE = {GOOD: 4.2, POOR: 2.6, TWIN1: 3.4, TWIN2: 3.4}
UNDERSTANDABLE = {GOOD: 3.9, POOR: 2.7, TWIN1: 3.3, TWIN2: 3.3}
VIEW_KEYS = {"id", "kind", "has_image", "prompt", "options", "panels", "number", "total"}


def _responses(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(EvalResponse))


def _hidden(text: str, keys) -> None:
    """Nothing the browser gets names a method or an image key."""
    for secret in [*METHODS, *keys]:
        assert secret not in text, secret


def _take_part(client: Client, person, simulated_by_question, keys, checks: bool = False) -> list[str]:
    """Enrol as ``person`` and answer like the simulated participant; the question ids in order."""
    r = client.post("/study/api/enrol", {"background": person.background, "consent": True})
    assert r.status_code == 200, r.text
    state, asked = r.json(), []
    while state["status"] == "question":
        view = state["question"]
        assert set(view) == VIEW_KEYS | ({"scales", "scale_range"} if view["kind"] == "rating" else set())
        assert view["number"] == len(asked) + 1 and state["answered"] == len(asked)
        _hidden(json.dumps(state), keys)
        mine = simulated_by_question[(person.id, view["id"])]
        if view["has_image"]:
            image = client.get(f"/study/api/questions/{view['id']}/image.png")
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        shown = {letter: method_of(client.get(f"/study/api/questions/{view['id']}/pictures/{letter}.png").content)
                 for letter in view["panels"]}
        if view["kind"] == "rating":
            assert sorted(shown.values()) == sorted(METHODS)  # each method once, under its own letter
            value = {(r.method, r.scale): r.value for r in mine}
            body = {"ratings": {letter: {scale: value[(method, scale)] for scale in view["scales"]}
                                for letter, method in shown.items()}}
        elif view["kind"] == "forward":
            (r,) = mine
            assert r.condition == ("with" if shown else "without")  # the same counterbalancing as simulated
            assert list(shown.values()) == ([r.method] if shown else [])
            body = {"choice": r.choice}
        elif view["kind"] == "attention":
            body = {"choice": mine[0].choice}
        else:
            body = {"text": mine[0].text}
        r = client.post(f"/study/api/questions/{view['id']}/answer", body)
        assert r.status_code == 200, r.text
        if checks and len(asked) == 0:
            before = _responses(client.store)
            again = client.post(f"/study/api/questions/{view['id']}/answer", body)
            assert again.status_code == 409 and "already answered" in again.json()["detail"]
            assert _responses(client.store) == before
        asked.append(view["id"])
        state = r.json()
    assert state["status"] == "finished" and state["answered"] == state["total"] == len(asked)
    return asked


def test_simulated_participants_through_http_recover_the_planted_difference(store, tmp_path):
    # Seeded: the twins' tests are true nulls, so about one seed in twelve flags one of the two
    # scales by chance (checked over 200 seeds offline); the planted difference is found at every seed.
    made = make_eval_study(store, n_images=12, n_forward=6, attention_every=4, seed=2)
    simulated = simulate_study(made["design"], 20, seed=made["seed"], informativeness=INFORMATIVE,
                               understandability=UNDERSTANDABLE, forward_without=0.45,
                               forward_with={GOOD: 0.95, POOR: 0.5, TWIN1: 0.7, TWIN2: 0.7},
                               expert_share=0.5, inattentive=0.1)
    by_question: dict = {}
    for r in simulated.responses:
        by_question.setdefault((r.participant, r.question), []).append(r)
    app = create_app(store, rate_limit=None)
    for i, person in enumerate(simulated.participants):
        client = Client(app)
        client.store = store
        assert client.signup(f"sim{i:02d}").status_code == 201
        asked = _take_part(client, person, by_question, made["keys"], checks=i == 0)
        assert asked == [q for (p, q) in by_question if p == person.id]  # the assigned order
        page = client.get("/study", headers={"accept": "text/html"})
        assert page.status_code == 200 and "Thank you" in page.text

    stored = study_data(store, "ev")
    assert len(stored.responses) == len(simulated.responses)
    assert [(p.id, p.background, p.slot) for p in stored.participants] == [
        (p.id, p.background, p.slot) for p in simulated.participants]
    assert all(r.shown_at is not None and r.shown_at <= r.answered_at for r in stored.responses)
    analysis, index = analyse_study(store, "ev", tmp_path / "report")
    assert index.is_file() and (index.parent / "responses.csv").is_file()
    expected = analyse(simulated.responses, simulated.participants, questions=made["design"], methods=METHODS)
    assert analysis.excluded == expected.excluded and analysis.participants == expected.participants
    careless = {r.participant for r in simulated.responses if r.kind == "attention" and not r.correct}
    assert analysis.excluded == sorted(careless) and 0 < len(careless) < 10  # failed an attention check
    assert [s.mean for s in analysis.scores] == pytest.approx([s.mean for s in expected.scores])
    assert [s.ci_low for s in analysis.scores] == pytest.approx([s.ci_low for s in expected.scores])
    assert [t.p_holm for t in analysis.pairs] == pytest.approx([t.p_holm for t in expected.pairs])
    assert [f.accuracy for f in analysis.forward] == pytest.approx([f.accuracy for f in expected.forward])
    assert [b.p for b in analysis.background] == pytest.approx([b.p for b in expected.background])
    for scale in ("informativeness", "understandability"):
        planted = analysis.pair(scale, GOOD, POOR)
        assert planted.significant and planted.p_holm < 0.01 and planted.mean_a - planted.mean_b > 0.8
        same = analysis.pair(scale, TWIN1, TWIN2)
        assert not same.significant and abs(same.mean_diff) < 0.3
        assert analysis.score(GOOD, scale).ci_low > analysis.score(POOR, scale).ci_high
    with_, without = (next(f for f in analysis.forward if f.condition == c and f.method is None)
                      for c in ("with", "without"))
    assert with_.accuracy > without.accuracy


@pytest.fixture
def served(store):
    made = make_eval_study(store)
    with store.session() as s:
        accounts.create_account(s, "chief", "summit-ledger-77", role="admin")
    return store, made, create_app(store, rate_limit=None)


def test_routes_refuse_what_they_must_and_store_nothing(served):
    store, _, app = served
    visitor = Client(app)
    assert visitor.get("/study/api/state").status_code == 401
    page = visitor.get("/study", headers={"accept": "text/html"})
    assert page.status_code == 200 and "/login?next=/study" in page.text
    assert visitor.post("/study/api/enrol", {"background": "novice", "consent": True}).status_code == 401
    ann = Client(app)
    ann.signup("ann_eval")
    assert ann.get("/study/api/state").status_code == 404  # not enrolled yet
    page = ann.get("/study", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'action="/study/enrol"' in page.text
    assert ann.http.post("/study/api/enrol", json={"background": "novice", "consent": True}).status_code == 403
    assert ann.post("/study/api/enrol", {"background": "novice", "consent": False}).status_code == 400
    assert ann.post("/study/api/enrol", {"background": "novice", "consent": "yes"}).status_code == 422
    assert ann.post("/study/api/enrol", {"background": "wizard", "consent": True}).status_code == 400
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(EvalParticipant)) == 0
    state = ann.post("/study/api/enrol", {"background": "expert", "consent": True}).json()
    assert ann.post("/study/api/enrol", {"background": "novice", "consent": True}).json() == state  # once only
    view = state["question"]
    assert view["kind"] == "rating"
    url = f"/study/api/questions/{view['id']}/answer"
    good = {"ratings": {letter: {"informativeness": 3, "understandability": 4} for letter in view["panels"]}}
    bad_bodies = [
        {"ratings": {letter: {"informativeness": 6, "understandability": 4} for letter in view["panels"]}},
        {"ratings": {letter: {"informativeness": True, "understandability": 4} for letter in view["panels"]}},
        {"ratings": {letter: {"informativeness": "3", "understandability": 4} for letter in view["panels"]}},
        {"ratings": {"A": {"informativeness": 3, "understandability": 4}}},
        {"choice": "cat"},
        {},
    ]
    for body in bad_bodies:
        assert ann.post(url, body).status_code in (400, 422), body
    assert ann.http.post(url, json=good).status_code == 403  # no CSRF token
    assert ann.post("/study/api/questions/nope/answer", good).status_code == 404
    order = [q["id"] for q in study_assignment(store, "p000")]
    assert ann.post(f"/study/api/questions/{order[3]}/answer", {"choice": "1"}).status_code == 409
    assert ann.get(f"/study/api/questions/{order[3]}/pictures/A.png").status_code in (404,)
    assert _responses(store) == 0
    assert ann.post(url, good).status_code == 200
    assert ann.post(url, good).status_code == 409
    assert _responses(store) == 2 * len(view["panels"])
    # ann leaves and logs in again: the next question, not the first
    back = Client(app)
    assert back.login("ann_eval").status_code == 200
    state = back.get("/study/api/state").json()
    assert state["answered"] == 1 and state["question"]["id"] == order[1] and state["question"]["number"] == 2
    assert back.get(f"/study/api/questions/{order[0]}/pictures/A.png").status_code == 404  # answered: not any more
    for letter in state["question"]["panels"]:  # the current question's pictures are
        assert back.get(f"/study/api/questions/{order[1]}/pictures/{letter}.png").status_code == 200
    # admins only
    assert back.get("/study/admin").status_code == 403
    assert back.get("/study/api/admin/progress").status_code == 403
    chief = Client(app)
    chief.login("chief", "summit-ledger-77")
    progress = chief.get("/study/api/admin/progress").json()
    assert progress["participants"] == 1 and progress["finished"] == 0 and progress["backgrounds"] == {"expert": 1}
    assert progress["responses"] == {"rating": 2 * len(view["panels"])}
    assert "Study progress" in chief.get("/study/admin", headers={"accept": "text/html"}).text
    archive = zipfile.ZipFile(io.BytesIO(chief.get("/admin/export.zip").content))
    names = set(archive.namelist())
    assert {"ev/eval_responses.csv", "ev/responses.csv", "ev/study.json"} <= names
    rows = archive.read("ev/responses.csv").decode().strip().splitlines()
    assert len(rows) == 1 + 2 * len(view["panels"]) and rows[1].startswith("p000,expert,False,")


def study_assignment(store, code: str) -> list[dict]:
    with store.session() as s:
        return s.scalars(select(EvalParticipant.assignment).where(EvalParticipant.code == code)).one()


def test_the_game_and_the_study_keep_to_their_kind_of_study(store):
    make_tiny_study(store, name="reveal")
    reveal_app = create_app(store, "reveal", rate_limit=None)
    player = Client(reveal_app)
    player.signup("player_one")
    for path in ("/study", "/study/api/state"):
        r = player.get(path)
        assert r.status_code == 404 and "not an evaluation study" in r.json()["detail"]
    assert player.post("/study/api/enrol", {"background": "novice", "consent": True}).status_code == 404
    assert player.post("/api/rounds").status_code == 200  # the game still runs
    make_eval_study(store)
    eval_app = create_app(store, rate_limit=None)  # the newest study: the evaluation one
    person = Client(eval_app)
    person.signup("person_one")
    for method, path in (("POST", "/api/rounds"), ("GET", "/api/leaderboard"), ("GET", "/api/stats")):
        r = person.post(path) if method == "POST" else person.get(path)
        assert r.status_code == 404 and r.json()["detail"] == "this study has no reveal game"
    page = person.get("/leaderboard", headers={"accept": "text/html"})
    assert page.status_code == 404 and "this study has no reveal game" in page.text
    for path in ("/", "/play"):
        r = person.get(path, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/study"
    page = person.get("/study", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'href="/study"' in page.text and 'href="/play"' not in page.text
