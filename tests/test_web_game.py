"""The reveal game: rules (store.game) and the HTTP calls (sign-up, rounds, reveal, guesses, outcomes)."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import threading
import uuid

import pytest
from dbs import TINY_CLASSES, make_tiny_study, store, store_url  # noqa: F401  (fixtures: each test runs on SQLite and PostgreSQL)
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from webstudy import PASSWORD, Client, counts, study_ids

from netreveal.errors import NetrevealError
from netreveal.store import accounts, open_store
from netreveal.store import game as rules
from netreveal.store.models import REVEAL_PERCENTS, Account, Game, Guess, Item, Study, WebSession
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)


@pytest.fixture
def ids(store):
    """The tiny study of tests/dbs.py (3 images x 3 layers x 2 clusters, classes cat, dog, fox)."""
    return study_ids(store, make_tiny_study(store))


@pytest.fixture
def app(store, ids):
    return create_app(store, rate_limit=ROOMY)


def player(store, name="pl1"):
    with store.session() as s:
        return accounts.create_account(s, name, PASSWORD)


def study_of(s, ids):
    return s.get(Study, ids["study"])


def wrong_class(answer):
    return next(c for c in TINY_CLASSES if c != answer)


# ---- rules -------------------------------------------------------------------------------------

def test_points_favour_early_wins():
    assert [rules.points_for(s, True) for s in range(1, 7)] == [100, 70, 50, 35, 20, 10]
    assert all(rules.points_for(s, False) == 0 for s in range(1, 7))
    assert rules.STEPS == len(REVEAL_PERCENTS) == 6


@pytest.mark.parametrize("win_step", [1, 3, 6])
def test_win_after_reveals_scores_the_step_points(store, ids, win_step):
    p = player(store)
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        game = rules.start_round(s, study, me)
        for step in range(1, win_step):
            rules.reveal_more(s, game, from_step=step)
        assert game.step == win_step
        ack, replayed = rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                           guessed_class=ids["answer"][game.item_id], text="fur")
    assert not replayed and ack.correct and ack.outcome == "win"
    assert ack.points == rules.POINTS[win_step - 1] and ack.step == win_step and ack.next_step == win_step
    with store.session() as s:
        g = s.get(Game, game.id)
        assert (g.outcome, g.points, g.step) == ("win", rules.POINTS[win_step - 1], win_step)
        assert g.finished_at is not None


def test_wrong_guesses_reveal_more_then_lose_at_the_last_step(store, ids):
    p = player(store)
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        game = rules.start_round(s, study, me)
        wrong = wrong_class(ids["answer"][game.item_id])
        acks = [rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()), guessed_class=wrong,
                                   text=f"label {i}")[0] for i in range(6)]
    assert [a.step for a in acks] == [1, 2, 3, 4, 5, 6]
    assert [a.outcome for a in acks] == [None] * 5 + ["loss"]
    assert all(a.points == 0 and not a.correct for a in acks)
    assert acks[-1].answer == ids["answer"][game.item_id] and acks[0].answer is None
    with store.session() as s:
        g = s.get(Game, game.id)
        assert (g.outcome, g.points, g.step) == ("loss", 0, 6)
        assert s.get(Item, game.item_id).label_count == 6  # wrong guesses keep their labels
        with pytest.raises(rules.GameError) as err:
            rules.submit_guess(s, study_of(s, ids), s.get(Account, p.id), game.id, request_id=str(uuid.uuid4()),
                               guessed_class=ids["answer"][game.item_id], text="late")
        assert err.value.status == 409


def test_resign_and_reveal_limits(store, ids):
    p = player(store)
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        game = rules.start_round(s, study, me)
        for step in range(1, 6):
            rules.reveal_more(s, game, from_step=step)
        rules.reveal_more(s, game, from_step=5)  # a retry of the last reveal changes nothing
        assert game.step == 6
        with pytest.raises(rules.GameError):
            rules.reveal_more(s, game)  # nothing more to show
        rules.resign(s, game)
        assert (game.outcome, game.points) == ("resign", 0)
        rules.resign(s, game)  # idempotent
        with pytest.raises(rules.GameError):
            rules.reveal_more(s, game)


def test_correct_class_is_the_true_class_when_known(store, ids):
    from netreveal.store.models import StudyImage

    p = player(store)
    first = ids["items"][0]
    answer = ids["answer"][first]
    with store.session() as s:
        image = s.get(Item, first).image_id
        s.execute(update(StudyImage).where(StudyImage.id == image).values(predicted_class=wrong_class(answer)))
        s.execute(update(Item).where(Item.image_id != image).values(label_count=100))  # only this image's items
        study, me = study_of(s, ids), s.get(Account, p.id)
        game = rules.start_round(s, study, me)
        ack, _ = rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                    guessed_class=wrong_class(answer), text="x")  # the model's (wrong) class
        assert not ack.correct and ack.outcome is None
        ack, _ = rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()), guessed_class=answer, text="x")
        assert ack.correct and ack.outcome == "win"
        # without a true class, the model's prediction is the answer
        s.execute(update(StudyImage).where(StudyImage.id == image).values(true_class=None))
        game = rules.start_round(s, study, me)
        ack, _ = rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                    guessed_class=wrong_class(answer), text="y")
        assert ack.correct and ack.answer == wrong_class(answer)


def test_assignment_takes_fewest_labels_first_and_never_repeats(store, ids):
    items = ids["items"]
    planted = {item: (len(items) - i) % 4 for i, item in enumerate(items)}  # label counts 0..3
    with store.session() as s:
        for item, n in planted.items():
            s.execute(update(Item).where(Item.id == item).values(label_count=n))
    p = player(store)
    order = []
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        for _ in items:
            game = rules.start_round(s, study, me)
            order.append(game.item_id)
            assert rules.start_round(s, study, me).id == game.id  # one open round at a time
            rules.resign(s, game)
        with pytest.raises(rules.GameError) as err:
            rules.start_round(s, study, me)
        assert err.value.status == 409
    assert sorted(order) == sorted(items)  # each item once
    # the label counts did not change (resigns add none), so the order follows (labels, id)
    assert order == sorted(items, key=lambda i: (planted[i], i))


def test_assignment_spreads_players_over_tied_items(store, ids):
    a, b = player(store, "aa1"), player(store, "bb1")
    with store.session() as s:
        study = study_of(s, ids)
        g1 = rules.start_round(s, study, s.get(Account, a.id))
        g2 = rules.start_round(s, study, s.get(Account, b.id))
    assert g1.item_id != g2.item_id  # same label count: the one with no round in progress goes first
    with store.session() as s:
        c = player(store, "cc1")
        s.execute(update(Item).where(Item.id != ids["items"][-1]).values(label_count=5))
        g3 = rules.start_round(s, study_of(s, ids), s.get(Account, c.id))
    assert g3.item_id == ids["items"][-1]  # fewest labels beats rounds in progress


def test_two_requests_racing_for_a_round_get_the_same_one(store, ids):
    p = player(store)
    first = Session(store.engine, expire_on_commit=False)
    study, me = study_of(first, ids), first.get(Account, p.id)
    game = rules.start_round(first, study, me)  # flushed, not committed: holds the write lock
    result = {}

    def other():
        with store.session() as s:
            result["game"] = rules.start_round(s, study_of(s, ids), s.get(Account, p.id)).id

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=0.5)
    first.commit()
    first.close()
    thread.join(timeout=15)
    assert result["game"] == game.id  # the loser met the unique key and took the winner's round
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Game)) == 1


def test_a_retried_guess_is_stored_once_with_the_same_acknowledgement(store, ids):
    p, q = player(store, "pl1"), player(store, "ql1")
    rid = str(uuid.uuid4())
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        game = rules.start_round(s, study, me)
        wrong = wrong_class(ids["answer"][game.item_id])
        first, replayed1 = rules.submit_guess(s, study, me, game.id, request_id=rid, guessed_class=wrong, text="ears")
    with store.session() as s:
        study, me = study_of(s, ids), s.get(Account, p.id)
        again, replayed2 = rules.submit_guess(s, study, me, game.id, request_id=rid.upper(), guessed_class=wrong,
                                              text="ears")
        assert s.get(Game, game.id).step == 2  # the retry did not move the round again
        with pytest.raises(rules.GameError) as err:  # the same id from someone else is refused
            rules.submit_guess(s, study, s.get(Account, q.id), game.id, request_id=rid, guessed_class=wrong, text="x")
        assert err.value.status == 409
    assert (replayed1, replayed2) == (False, True) and first == again
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 1


def test_concurrent_retries_of_one_guess_store_it_once(store, ids):
    p = player(store)
    with store.session() as s:
        game = rules.start_round(s, study_of(s, ids), s.get(Account, p.id))
    rid, answer = str(uuid.uuid4()), ids["answer"][game.item_id]
    acks, errors = [], []
    barrier = threading.Barrier(4)

    def send():
        barrier.wait()
        try:
            with store.session() as s:
                acks.append(rules.submit_guess(s, study_of(s, ids), s.get(Account, p.id), game.id, request_id=rid,
                                               guessed_class=answer, text="whiskers"))
        except Exception as exc:  # noqa: BLE001 - any failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len({a for a, _ in acks}) == 1 and sorted(r for _, r in acks) == [False, True, True, True]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 1
        assert s.get(Item, game.item_id).label_count == 1


def test_leaderboard_and_stats(store, ids):
    names = ["ann", "ben", "cid"]
    people = [player(store, n) for n in names]
    with store.session() as s:
        study = study_of(s, ids)
        plan = {"ann": [1, 2], "ben": [1], "cid": ["resign"]}  # win steps per round
        for person in people:
            me = s.get(Account, person.id)
            for what in plan[person.username]:
                game = rules.start_round(s, study, me)
                if what == "resign":
                    rules.resign(s, game)
                    continue
                for step in range(1, what):
                    rules.reveal_more(s, game, from_step=step)
                rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                   guessed_class=ids["answer"][game.item_id], text="tail")
        board = rules.leaderboard(s, study)
        assert [(r.rank, r.username, r.points, r.wins, r.rounds) for r in board] == [
            (1, "ann", 170, 2, 2), (2, "ben", 100, 1, 1), (3, "cid", 0, 0, 1)]
        stats = rules.player_stats(s, study, s.get(Account, people[0].id))
        assert (stats.rounds, stats.wins, stats.points, stats.labels, stats.rank, stats.players) == (2, 2, 170, 2, 1, 3)
        assert stats.mean_win_step == pytest.approx(1.5)
        assert stats.recent[0]["text"] == "tail"
        cid = rules.player_stats(s, study, s.get(Account, people[2].id))
        assert (cid.resigns, cid.points, cid.rank) == (1, 0, 3)


def test_text_rules():
    assert rules.clean_text("  a   striped\ttail ") == "a striped tail"
    assert rules.clean_text("Straße ünder 猫") == "Straße ünder 猫"
    for bad in ("", "   ", "x" * 101, "a\x00b", "ab\u202ecd", "\u200b", 5):
        with pytest.raises(rules.GameError):
            rules.clean_text(bad)
    assert rules.check_language(None) == "en" and rules.check_language("pt-BR") == "pt-BR"
    with pytest.raises(rules.GameError):
        rules.check_language("english!")


# ---- HTTP --------------------------------------------------------------------------------------

def test_sign_up_log_in_and_out_with_forms(store, app):
    c = Client(app)
    page = c.get("/signup")
    assert page.status_code == 200 and 'name="csrf-token"' in page.text
    r = c.http.post("/signup", data={"username": "Zoe_1", "password": "correct horse", "role": "player",
                                     "csrf_token": c.csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/play"
    cookie = r.headers["set-cookie"]
    assert "netreveal_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    token = c.http.cookies["netreveal_session"]
    with store.session() as s:
        stored = s.scalars(select(WebSession)).all()
        assert [w.token_hash for w in stored] == [accounts.token_hash(token)] and token not in stored[0].token_hash
        account = s.scalars(select(Account)).one()
        assert account.password_hash.startswith("$argon2id$") and "correct horse" not in account.password_hash
    play = c.get("/play", headers={"accept": "text/html"})
    assert play.status_code == 200 and "Zoe_1" in play.text
    csrf = play.text.split('name="csrf-token" content="')[1].split('"')[0]
    r = c.http.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0
    assert c.get("/play", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303
    # log in again, case-insensitively; a wrong password is refused
    c2 = Client(app)
    login = c2.get("/login")
    bad = c2.http.post("/login", data={"username": "zoe_1", "password": "wrong password", "csrf_token": c2.csrf})
    assert bad.status_code == 401 and "wrong username or password" in bad.text
    ok = c2.http.post("/login", data={"username": "zoe_1", "password": "correct horse", "csrf_token": c2.csrf,
                                      "next": "/leaderboard"}, follow_redirects=False)
    assert login.status_code == 200 and ok.status_code == 303 and ok.headers["location"] == "/leaderboard"
    evil = c2.http.post("/login", data={"username": "zoe_1", "password": "correct horse", "csrf_token": c2.csrf,
                                        "next": "//evil.example/"}, follow_redirects=False)
    assert evil.status_code == 403  # the anonymous token is gone once logged in


def test_signup_cannot_choose_admin_and_names_are_unique(store, app):
    c = Client(app)
    assert c.post("/api/signup", {"username": "boss", "password": PASSWORD, "role": "admin"}).status_code == 403
    assert c.signup("taken").status_code == 201
    d = Client(app)
    r = d.signup("TAKEN")
    assert r.status_code == 409 and "taken" in r.json()["detail"]
    with store.session() as s:
        assert [(a.username, a.role) for a in s.scalars(select(Account))] == [("taken", "player")]


def test_round_over_http_reveal_steps_and_win(store, ids, app):
    c = Client(app)
    c.signup("alice")
    state = c.start()
    assert (state["step"], state["percent"], state["outcome"], state["steps"]) == (1, 2.0, None, 6)
    assert state["frame_url"] == f"/media/{ids['frames'][state['item_id']][0]}.png"
    assert c.get(state["frame_url"]).content.startswith(b"\x89PNG")
    assert state["classes"] == list(TINY_CLASSES)
    for step in (1, 2):
        state = c.post(f"/api/rounds/{state['game_id']}/reveal", {"from_step": step}).json()
    assert (state["step"], state["percent"]) == (3, 8.0)
    assert state["frame_url"] == f"/media/{ids['frames'][state['item_id']][2]}.png"
    answer = ids["answer"][state["item_id"]]
    r = c.guess(state["game_id"], answer, "pointy ears", step=3)
    ack = r.json()
    assert r.status_code == 200 and r.headers["idempotent-replayed"] == "false"
    assert (ack["outcome"], ack["points"], ack["answer"]) == ("win", 50, answer)
    after = c.get(f"/api/rounds/{state['game_id']}").json()
    assert after["outcome"] == "win" and after["image_url"] == f"/media/{ids['image_media'][state['item_id']]}.png"
    assert after["guesses"] == [{"step": 3, "guessed_class": answer, "text": "pointy ears", "correct": True}]
    board = c.get("/leaderboard")
    assert board.status_code == 200 and "alice" in board.text and ">50<" in board.text
    assert c.get("/api/leaderboard").json() == [{"rank": 1, "username": "alice", "points": 50, "wins": 1, "rounds": 1}]
    stats = c.get("/api/stats").json()
    assert (stats["points"], stats["wins"], stats["labels"]) == (50, 1, 1)
    assert "pointy ears" in c.get("/stats").text
    # the next round is another item
    assert c.start()["item_id"] != state["item_id"]


def test_loss_and_resign_over_http(store, ids, app):
    c = Client(app)
    c.signup("bob")
    state = c.start()
    wrong = wrong_class(ids["answer"][state["item_id"]])
    outcomes = [c.guess(state["game_id"], wrong, f"guess {i}").json()["outcome"] for i in range(6)]
    assert outcomes == [None] * 5 + ["loss"]
    assert c.guess(state["game_id"], wrong, "again").status_code == 409
    state = c.start()
    r = c.post(f"/api/rounds/{state['game_id']}/resign")
    assert r.status_code == 200 and r.json()["outcome"] == "resign" and r.json()["points"] == 0
    stats = c.get("/api/stats").json()
    assert (stats["rounds"], stats["losses"], stats["resigns"], stats["points"], stats["labels"]) == (2, 1, 1, 0, 6)


def test_retried_guess_over_http_is_stored_once(store, ids, app):
    c = Client(app)
    c.signup("carol")
    state = c.start()
    rid = str(uuid.uuid4())
    first = c.guess(state["game_id"], wrong_class(ids["answer"][state["item_id"]]), "a nose", request_id=rid)
    second = c.guess(state["game_id"], wrong_class(ids["answer"][state["item_id"]]), "a nose", request_id=rid)
    assert first.json() == second.json() and first.json()["next_step"] == 2
    assert (first.headers["idempotent-replayed"], second.headers["idempotent-replayed"]) == ("false", "true")
    with store.session() as s:
        assert s.scalars(select(Guess.request_id)).all() == [rid]
        assert s.get(Game, state["game_id"]).step == 2


def test_players_never_get_an_item_twice_over_http(store, ids, app):
    c = Client(app)
    c.signup("dave")
    seen = []
    for _ in ids["items"]:
        state = c.start()
        seen.append(state["item_id"])
        c.post(f"/api/rounds/{state['game_id']}/resign")
    r = c.post("/api/rounds")
    assert r.status_code == 409 and "every picture" in r.json()["detail"]
    assert sorted(seen) == sorted(ids["items"])
    # another player starts with the item with the fewest labels
    with store.session() as s:
        s.execute(update(Item).values(label_count=3))
        s.execute(update(Item).where(Item.id == ids["items"][3]).values(label_count=1))
    e = Client(app)
    e.signup("erin")
    assert e.start()["item_id"] == ids["items"][3]


def test_guess_rate_limit_answers_429_and_stores_nothing(store, ids):
    app = create_app(store, rate_limit=RateLimit(guesses=3, signups=100, failed_logins=100))
    c = Client(app)
    c.signup("fast")
    state = c.start()
    wrong = wrong_class(ids["answer"][state["item_id"]])
    rids = [str(uuid.uuid4()) for _ in range(4)]
    assert [c.guess(state["game_id"], wrong, "x", request_id=r).status_code for r in rids[:3]] == [200] * 3
    before = counts(store)
    r = c.guess(state["game_id"], wrong, "x", request_id=rids[3])
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert counts(store) == before
    # a retry of an acknowledged guess still gets its acknowledgement
    assert c.guess(state["game_id"], wrong, "x", request_id=rids[0]).status_code == 200


def test_pages_render(store, ids, app):
    c = Client(app)
    for path in ("/", "/how-to-play", "/leaderboard", "/login", "/signup"):
        r = c.get(path, headers={"accept": "text/html"})
        assert r.status_code == 200, path
        assert "tiny" in r.text  # the study's name in the header
    assert "30.0%" in c.get("/how-to-play").text
    c.signup("gina")
    assert c.get("/", follow_redirects=False).headers["location"] == "/play"
    play = c.get("/play")
    assert play.status_code == 200 and 'value="fox"' in play.text and "/static/play.js" in play.text


def test_create_app_needs_a_study(tmp_path):
    empty = open_store(tmp_path / "empty.db")
    with pytest.raises(NetrevealError,
                       match=r"no study in .*empty.db: run `netreveal demo` or `netreveal study create`"):
        create_app(empty)
    empty.close()


def test_app_serves_the_named_or_newest_study(store, ids):
    second = make_tiny_study(store, name="second")
    assert create_app(store).state.study_id == second
    assert create_app(store, "tiny").state.study_id == ids["study"]
    with pytest.raises(NetrevealError, match="no study named 'nope'"):
        create_app(store, "nope")


def test_serve_without_a_study_is_one_line_error(tmp_path, capsys, monkeypatch):
    from netreveal.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETREVEAL_DATABASE_URL", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "netreveal: error: no study in netreveal.db: run `netreveal demo` or `netreveal study create`"
    assert not (tmp_path / "netreveal.db").exists()


def test_account_command_reads_the_password_from_stdin(tmp_path, monkeypatch, capsys):
    import io

    from netreveal.cli import main

    db = str(tmp_path / "acc.db")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert main(["account", "add", "root", "--role", "admin", "--database-url", db]) == 0
    assert main(["account", "role", "root", "annotator", "--database-url", db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["account", "add", "other", "--database-url", db]) == 2
    assert "password must have" in capsys.readouterr().err
    store = open_store(db)
    with store.session() as s:
        assert accounts.authenticate(s, "root", "s3cret-password").role == "annotator"
        assert accounts.authenticate(s, "root", "s3cret-password\n") is None
        assert s.scalar(select(func.count()).select_from(Account)) == 1
    store.close()
