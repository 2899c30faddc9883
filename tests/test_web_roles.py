# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Roles over HTTP, on SQLite and PostgreSQL: sign-up makes players only, annotators and admins
come from an admin's invitation (page, JSON or ``netreveal account invite``), they neither play
nor score, and each role fetches only the pictures it needs."""

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from evalstudy import make_eval_study
from sqlalchemy import select, update
from webstudy import PASSWORD, Client, counts, make_account, study_ids

from netreveal.store import game as rules
from netreveal.store.models import Account, EvalQuestion, Invitation, Media, Study
from netreveal.web.app import create_app
from netreveal.web.evaluation import NOT_A_PARTICIPANT
from netreveal.web.game import NOT_A_PLAYER


@pytest.fixture
def ids(store):
    return study_ids(store, make_tiny_study(store))


@pytest.fixture
def app(store, ids):
    return create_app(store, rate_limit=None)


def logged_in(app, store, username, role="player"):
    make_account(store, username, role=role)
    c = Client(app)
    assert c.login(username).status_code == 200
    return c


def all_media(store, study_id) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Media.id).where(Media.study_id == study_id).order_by(Media.id)))


def fetchable(client, media_ids) -> set[int]:
    """The media ids ``client`` gets (200); every other one must be 404."""
    got = set()
    for media_id in media_ids:
        status = client.get(f"/media/{media_id}.png").status_code
        assert status in (200, 404), (media_id, status)
        if status == 200:
            got.add(media_id)
    return got


# ---- who makes which account -------------------------------------------------------------------

def test_signing_up_makes_players_only(store, app):
    c = Client(app)
    before = counts(store)
    for role in ("annotator", "admin"):
        r = c.signup(f"want_{role}", role=role)
        assert r.status_code == 403 and "invitation" in r.json()["detail"]
        form = c.http.post("/signup", data={"username": f"form_{role}", "password": PASSWORD, "role": role,
                                            "csrf_token": c.csrf})
        assert form.status_code == 403 and "invitation" in form.text
    assert counts(store) == before
    page = c.get("/signup")
    assert 'name="role"' not in page.text and "invitation" in page.text
    assert c.signup("plain").status_code == 201
    with store.session() as s:
        assert s.scalars(select(Account.role)).all() == ["player"]


def test_an_admins_invitation_link_makes_an_annotator_once(store, app):
    admin = logged_in(app, store, "root", "admin")
    player = logged_in(app, store, "pete")
    assert player.post("/api/admin/invitations", {"role": "annotator"}).status_code == 403
    made = admin.post("/api/admin/invitations", {"role": "annotator", "days": 2})
    assert made.status_code == 201, made.text
    body = made.json()
    token = body["token"]
    assert body["link"] == f"http://testserver/invite/{token}" and body["role"] == "annotator"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=1, hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=2)
    with store.session() as s:
        stored = s.scalars(select(Invitation)).one()
        assert token not in stored.token_hash and stored.used_at is None
    # the page, then the form: the new account has the invitation's role and lands in the studio
    visitor = Client(app)
    page = visitor.get(f"/invite/{token}")
    assert page.status_code == 200 and "annotator" in page.text
    weak = visitor.http.post(f"/invite/{token}", data={"username": "nina", "password": "nina12345",
                                                        "csrf_token": visitor.csrf}, follow_redirects=False)
    assert weak.status_code == 400 and "user name" in weak.text  # refused: the link still works
    done = visitor.http.post(f"/invite/{token}", data={"username": "nina", "password": PASSWORD,
                                                        "csrf_token": visitor.csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/studio"
    with store.session() as s:
        nina = s.scalars(select(Account).where(Account.username == "nina")).one()
        assert nina.role == "annotator"
        used = s.scalars(select(Invitation)).one()
        assert used.used_by == nina.id and used.used_at is not None
    assert visitor.get("/studio/api/filters").status_code == 200
    # used once: the link is dead, for the page and for the JSON call
    again = Client(app)
    assert again.get(f"/invite/{token}").status_code == 404
    r = again.post(f"/api/invitations/{token}", {"username": "nina2", "password": PASSWORD})
    assert r.status_code == 404 and "not valid" in r.json()["detail"]
    for bad in ("x" * 10, "A" * 80, "../../etc/passwd", uuid.uuid4().hex):
        assert again.get(f"/invite/{bad}").status_code == 404


def test_expired_and_withdrawn_invitations_do_not_work(store, app):
    admin = logged_in(app, store, "root", "admin")
    expired = admin.post("/api/admin/invitations", {"role": "admin"}).json()["token"]
    withdrawn = admin.post("/api/admin/invitations", {"role": "annotator"}).json()["token"]
    assert admin.post("/api/admin/invitations", {"role": "annotator", "days": 31}).status_code == 400
    assert admin.post("/api/admin/invitations", {"role": "emperor"}).status_code == 400
    with store.session() as s:
        s.execute(update(Invitation).where(Invitation.role == "admin")
                  .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        withdrawn_id = s.scalars(select(Invitation.id).where(Invitation.role == "annotator")).one()
    page = admin.get("/admin")
    assert page.status_code == 200 and f"/admin/invite/{withdrawn_id}/withdraw" in page.text
    r = admin.http.post(f"/admin/invite/{withdrawn_id}/withdraw", data={"csrf_token": admin.csrf},
                        follow_redirects=False)
    assert r.status_code == 303
    before = counts(store)
    for token in (expired, withdrawn):
        assert Client(app).post(f"/api/invitations/{token}", {"username": "late_one", "password": PASSWORD}
                                ).status_code == 404
    assert counts(store) == before


def test_the_admin_page_makes_invitation_links(store, app):
    admin = logged_in(app, store, "root", "admin")
    page = admin.http.post("/admin/invite", data={"role": "annotator", "days": "3", "csrf_token": admin.csrf})
    assert page.status_code == 200
    link = re.search(r'id="invitation-link" readonly value="([^"]+)"', page.text).group(1)
    assert link.startswith("http://testserver/invite/")
    r = Client(app).post("/api/invitations/" + link.rsplit("/", 1)[1], {"username": "ivy", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["account"] == {"username": "ivy", "role": "annotator"}


def test_account_invite_command_prints_a_one_time_link(store, store_url, app, capsys):
    from netreveal.cli import main

    assert main(["account", "invite", "--role", "annotator", "--days", "1", "--url", "https://ex.org/",
                 "--database-url", store_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"https://ex\.org/invite/[A-Za-z0-9_-]{32}", out[0])
    assert re.fullmatch(r"one-time link for a new annotator account, valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC",
                        out[1])
    token = out[0].rsplit("/", 1)[1]
    r = Client(app).post(f"/api/invitations/{token}", {"username": "cli_ann", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["account"]["role"] == "annotator"
    assert Client(app).post(f"/api/invitations/{token}", {"username": "cli_two", "password": PASSWORD}
                            ).status_code == 404
    assert main(["account", "invite", "--days", "0", "--database-url", store_url]) == 2
    assert main(["account", "invite", "--url", "ex.org", "--database-url", store_url]) == 2


# ---- annotators and admins do not play ---------------------------------------------------------

@pytest.mark.parametrize("role", ["annotator", "admin"])
def test_annotators_and_admins_do_not_play_or_score(store, ids, app, role):
    staff = logged_in(app, store, "staffer", role)
    player = logged_in(app, store, "pia")
    state = player.start()
    before = counts(store)
    for method, path in (("POST", "/api/rounds"), ("GET", f"/api/rounds/{state['game_id']}"),
                         ("POST", f"/api/rounds/{state['game_id']}/reveal"),
                         ("POST", f"/api/rounds/{state['game_id']}/resign"), ("GET", "/api/stats")):
        r = staff.post(path) if method == "POST" else staff.get(path)
        assert r.status_code == 403 and r.json()["detail"] == NOT_A_PLAYER, path
    assert staff.guess(state["game_id"], "cat").status_code == 403
    for path in ("/play", "/stats"):
        page = staff.get(path, headers={"accept": "text/html"})
        assert page.status_code == 403 and "do not play the reveal game" in page.text, path
    assert counts(store) == before
    home = staff.get("/", follow_redirects=False).headers["location"]
    assert home == ("/admin" if role == "admin" else "/studio")
    nav = staff.get("/leaderboard").text
    assert 'href="/play"' not in nav and 'href="/stats"' not in nav and 'href="/account"' in nav


def test_only_players_are_on_the_leaderboard(store, ids, app):
    names = ("winner", "runner", "promoted")
    for name in names:
        make_account(store, name)
    with store.session() as s:  # rounds played while everyone was a player
        study = s.get(Study, ids["study"])
        for name, wins in zip(names, (1, 1, 2)):
            me = s.scalars(select(Account).where(Account.username == name)).one()
            for _ in range(wins):
                game = rules.start_round(s, study, me)
                rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                   guessed_class=ids["answer"][game.item_id], text="fur")
    c = Client(app)
    assert [row["username"] for row in c.get("/api/leaderboard").json()] == ["promoted", "runner", "winner"]
    admin = logged_in(app, store, "root", "admin")
    assert admin.post("/api/admin/role", {"username": "promoted", "role": "annotator"}).status_code == 200
    board = c.get("/api/leaderboard").json()
    assert [(row["rank"], row["username"]) for row in board] == [(1, "runner"), (2, "winner")]
    assert "promoted" not in c.get("/leaderboard").text
    runner = Client(app)
    runner.login("runner")
    stats = runner.get("/api/stats").json()
    assert (stats["rank"], stats["players"]) == (1, 2)


# ---- pictures ----------------------------------------------------------------------------------

def test_a_player_fetches_only_the_pictures_of_the_current_round(store, ids, app):
    every = all_media(store, ids["study"])
    c = logged_in(app, store, "pia")
    assert fetchable(c, every) == set()  # no round yet
    first = c.start()
    item = first["item_id"]
    frames = ids["frames"][item]
    assert fetchable(c, every) == {frames[0]}
    c.post(f"/api/rounds/{first['game_id']}/reveal", {"from_step": 1})
    assert fetchable(c, every) == set(frames[:2])
    wrong = next(x for x in ("cat", "dog", "fox") if x != ids["answer"][item])
    assert c.guess(first["game_id"], wrong, "ears", step=2).json()["outcome"] is None
    assert fetchable(c, every) == set(frames[:3])
    win = c.guess(first["game_id"], ids["answer"][item], "fur", step=3).json()
    assert win["outcome"] == "win"
    # the play page shows the whole image with the answer right after the round: still served
    over = c.get(f"/api/rounds/{first['game_id']}").json()
    assert over["image_url"] == f"/media/{ids['image_media'][item]}.png"
    assert fetchable(c, every) == set(frames[:3]) | {ids["image_media"][item]}
    # the next round takes the finished round's pictures away
    second = c.start()
    assert fetchable(c, every) == {ids["frames"][second["item_id"]][0]}
    assert Client(app).get(f"/media/{every[0]}.png").status_code == 404  # logged out
    annotator = logged_in(app, store, "namer", "annotator")
    assert fetchable(annotator, every) == set(every)  # the studio shows every image and map


def test_in_an_evaluation_study_pictures_come_only_by_question_and_letter(store):
    made = make_eval_study(store)
    app = create_app(store, rate_limit=None)
    every = all_media(store, made["id"])
    assert len(every) == 8 + 8 * len(made["methods"])  # the images and every explanation
    participant = logged_in(app, store, "pia")
    state = participant.post("/study/api/enrol", {"background": "novice", "consent": True}).json()
    with store.session() as s:
        questions = list(s.scalars(select(EvalQuestion.question).where(EvalQuestion.study_id == made["id"])))
    seen = 0
    while state["status"] == "question":
        view = state["question"]
        assert fetchable(participant, every) == set()  # no picture by id, ever
        for question in questions:  # only the current question's pictures, by question and letter
            base = f"/study/api/questions/{question}"
            current = question == view["id"]
            image = participant.get(f"{base}/image.png").status_code
            assert image == (200 if current and view["has_image"] else 404), question
            for letter in "ABCDE":
                status = participant.get(f"{base}/pictures/{letter}.png").status_code
                assert status == (200 if current and letter in view["panels"] else 404), (question, letter)
        answer = ({"ratings": {x: {"informativeness": 3, "understandability": 3} for x in view["panels"]}}
                  if view["kind"] == "rating" else {"text": "ok"} if view["kind"] == "comment"
                  else {"choice": view["options"][0]})
        state = participant.post(f"/study/api/questions/{view['id']}/answer", answer).json()
        seen += 1
        if seen == 2:
            break
    annotator = logged_in(app, store, "namer", "annotator")
    assert fetchable(annotator, every) == set()
    admin = logged_in(app, store, "root", "admin")
    assert fetchable(admin, every[:5]) == set(every[:5])


@pytest.mark.parametrize("role", ["annotator", "admin"])
def test_annotators_and_admins_do_not_take_part_in_evaluation_studies(store, role):
    make_eval_study(store)
    app = create_app(store, rate_limit=None)
    staff = logged_in(app, store, "staffer", role)
    before = counts(store)
    r = staff.post("/study/api/enrol", {"background": "expert", "consent": True})
    assert r.status_code == 403 and r.json()["detail"] == NOT_A_PARTICIPANT
    assert staff.get("/study/api/state").status_code == 403
    page = staff.get("/study", headers={"accept": "text/html"})
    assert page.status_code == 403 and "do not take part" in page.text
    assert counts(store) == before
    home = staff.get("/", follow_redirects=False).headers["location"]
    assert home == ("/study/admin" if role == "admin" else "/account")  # no studio in an evaluation study


@pytest.mark.parametrize("role", [None, "player", "annotator", "admin"])
def test_an_evaluation_server_shows_participant_pages_only(store, role):
    make_eval_study(store)
    app = create_app(store, rate_limit=None)
    visitor = logged_in(app, store, "someone", role) if role else Client(app)
    for path in ("/studio", "/studio/summary", "/studio/api/filters", "/explanations", "/explanations/images/1",
                 "/how-to-play", "/leaderboard"):
        assert visitor.get(path, headers={"accept": "text/html"}, follow_redirects=False).status_code == 404, path
    page = visitor.get("/account" if role else "/signup", headers={"accept": "text/html"}).text
    assert 'href="/studio"' not in page and 'href="/explanations"' not in page and 'href="/play"' not in page
    signup = visitor.get("/signup", headers={"accept": "text/html"}).text
    assert signup.count("<select") == 1 and '<select id="background"' in signup  # no role to choose
    assert "This account takes part in the study." in signup
