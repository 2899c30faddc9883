# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""What one guess costs: SQL statements, commits and worker-thread hops (the game's busiest call),
and that the cheaper path keeps the answers and releases its database connection (SQLite and
PostgreSQL)."""

import uuid
from collections import Counter
from contextlib import contextmanager

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import event, func, select, update
from webstudy import Client, study_ids

from netreveal.store import accounts
from netreveal.store import game as rules
from netreveal.store.models import Account, Game, Guess, Item, Study
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit


@pytest.fixture
def ids(store):
    return study_ids(store, make_tiny_study(store))


@pytest.fixture
def app(store, ids):
    return create_app(store, rate_limit=RateLimit(guesses=1000, signups=1000, failed_logins=1000))


def writes_of_a_guess(store) -> dict[str, int]:
    """The statements a new guess writes with: three on SQLite, one (data-modifying CTEs) on PostgreSQL."""
    return {"WITH": 1} if store.engine.dialect.name == "postgresql" else {"UPDATE": 2, "INSERT": 1}


@contextmanager
def counted(store):
    """SQL statements (by first word) and commits on ``store`` while the block runs."""
    statements, commits = Counter(), []

    def on_statement(_conn, _cursor, statement, *_args):
        statements[statement.split(None, 1)[0].upper()] += 1

    def on_commit(_conn):
        commits.append(1)

    event.listen(store.engine, "before_cursor_execute", on_statement)
    event.listen(store.engine, "commit", on_commit)
    try:
        yield statements, commits
    finally:
        event.remove(store.engine, "before_cursor_execute", on_statement)
        event.remove(store.engine, "commit", on_commit)


@contextmanager
def worker_hops():
    """Calls the event loop hands to a worker thread while the block runs (a list of one count)."""
    import anyio.to_thread

    real, hops = anyio.to_thread.run_sync, [0]

    async def counting(*args, **kwargs):
        hops[0] += 1
        return await real(*args, **kwargs)

    anyio.to_thread.run_sync = counting
    try:
        yield hops
    finally:
        anyio.to_thread.run_sync = real


def test_a_new_guess_is_one_query_and_its_writes(store, ids):
    with store.session() as s:
        me = accounts.create_account(s, "pl1", "plum-kettle-42")
        study = s.get(Study, ids["study"])
        game = rules.start_round(s, study, me)
        wrong = next(c for c in study.classes if c != ids["answer"][game.item_id])
    with store.session() as s:
        study, me = s.get(Study, ids["study"]), s.get(Account, me.id)
        with counted(store) as (statements, _):
            ack, replayed = rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()),
                                               guessed_class=wrong, text="ears")
        assert dict(statements) == {"SELECT": 1, **writes_of_a_guess(store)}
        assert not replayed and ack.outcome is None and ack.next_step == 2
        # a retry of it: the same one query, nothing written
        with counted(store) as (statements, _):
            again, replayed = rules.submit_guess(s, study, me, game.id, request_id=ack.request_id,
                                                 guessed_class=wrong, text="ears")
        assert dict(statements) == {"SELECT": 1} and replayed and again == ack


def test_a_guess_on_a_round_that_moved_meanwhile_writes_nothing(store, ids, monkeypatch):
    """The race the round's step check guards against: another request moved the round between this
    guess's read and its writes. The writes then change nothing (no guess, no label counted, the
    round as the other request left it) and the guess is refused with 409."""
    with store.session() as s:
        me = accounts.create_account(s, "pl1", "plum-kettle-42")
        study = s.get(Study, ids["study"])
        game = rules.start_round(s, study, me)
        wrong = next(c for c in study.classes if c != ids["answer"][game.item_id])
    real_execute, moved_by_other = rules.Session.execute, []

    def move_the_round_first(session, statement, *args, **kwargs):  # after the read, before the writes
        result = real_execute(session, statement, *args, **kwargs)
        if not moved_by_other:
            moved_by_other.append(1)
            with store.engine.begin() as other:
                other.execute(update(Game).where(Game.id == game.id).values(step=2))
        return result

    with store.session() as s:
        study, me = s.get(Study, ids["study"]), s.get(Account, me.id)
        labels_before = s.scalar(select(Item.label_count).where(Item.id == game.item_id))
        monkeypatch.setattr(rules.Session, "execute", move_the_round_first)
        with pytest.raises(rules.GameError) as err:
            rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()), guessed_class=wrong,
                               text="ears", step=1)
        monkeypatch.undo()
    assert err.value.status == 409 and moved_by_other
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 0
        assert s.scalar(select(Item.label_count).where(Item.id == game.item_id)) == labels_before
        assert s.get(Game, game.id).step == 2 and s.get(Game, game.id).outcome is None


def test_a_request_id_names_one_guess_of_one_round(store, ids):
    with store.session() as s:
        me = accounts.create_account(s, "pl1", "plum-kettle-42")
        study = s.get(Study, ids["study"])
        first = rules.start_round(s, study, me)
        answer = ids["answer"][first.item_id]
        ack, _ = rules.submit_guess(s, study, me, first.id, request_id=str(uuid.uuid4()), guessed_class=answer,
                                    text="won")
        second = rules.start_round(s, study, me)
        with pytest.raises(rules.GameError) as err:  # the same id on the player's next round
            rules.submit_guess(s, study, me, second.id, request_id=ack.request_id, guessed_class=answer, text="x")
        assert err.value.status == 409
        with pytest.raises(rules.GameError) as err:  # no such round of theirs
            rules.submit_guess(s, study, me, second.id + 1000, request_id=str(uuid.uuid4()), guessed_class=answer,
                               text="x")
        assert err.value.status == 404
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 1


def test_a_guess_over_http_is_one_worker_thread_hop_and_one_commit(store, app):
    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    with counted(store) as (_, commits), worker_hops() as hops:
        r = c.guess(state["game_id"], state["classes"][0], "ears", step=state["step"])
    assert r.status_code == 200
    assert hops[0] == 1 and len(commits) == 1
    with worker_hops() as hops:  # starting a round, looking at it: one hop each
        assert c.post("/api/rounds").status_code == 200
        assert c.get(f"/api/rounds/{state['game_id']}").status_code == 200
    assert hops[0] == 2


def test_a_guess_over_http_reads_the_session_with_the_study_and_the_round_with_the_guess_count(store, app):
    """Two queries in all: the session cookie's account with the served study, then the round with
    the answer, any guess under the request id and the player's guesses of the last minute (the
    rate limit); then the writes."""
    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    with counted(store) as (statements, _):
        r = c.guess(state["game_id"], state["classes"][0], "ears", step=state["step"])
    assert r.status_code == 200
    assert dict(statements) == {"SELECT": 2, **writes_of_a_guess(store)}


def test_every_call_gives_its_connection_back(store, app):
    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    gid = state["game_id"]
    good = {"request_id": str(uuid.uuid4()), "guessed_class": state["classes"][0], "text": "x"}
    calls = [
        lambda: c.post(f"/api/rounds/{gid}/guesses", {**good, "text": 5}),  # 422: the body, before any session
        lambda: c.post(f"/api/rounds/{gid}/guesses", {**good, "request_id": "nope"}),  # 400 from the rules
        lambda: c.post(f"/api/rounds/{gid + 999}/guesses", good),  # 404
        lambda: c.http.post(f"/api/rounds/{gid}/guesses", json=good),  # 403: no CSRF token
        lambda: Client(app).post("/api/rounds"),  # 401
        lambda: c.post(f"/api/rounds/{gid}/guesses", good),  # 200
        lambda: c.get("/play"),  # a page
    ]
    statuses = []
    for call in calls:
        statuses.append(call().status_code)
        assert store.engine.pool.checkedout() == 0, statuses
    assert statuses == [422, 400, 404, 403, 401, 200, 200]


def _pooled_backend_pids(store) -> list[int]:
    """The PostgreSQL server processes behind the connections the store's pool holds."""
    from sqlalchemy import text

    held = [store.engine.connect() for _ in range(store.engine.pool.checkedin())]
    try:
        return [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in held]
    finally:
        for c in held:
            c.close()


def test_connections_the_database_dropped_cost_one_retry_and_lose_no_guess(store, app):
    """The pool does not ping a connection before each request (a round trip per request); when the
    database has dropped the pooled connections (a restart, say), the first request to meet one is
    answered 503 with Retry-After (the game page retries it with the same request id), the pool
    forgets every connection of that generation at once, and the retried guess is stored once."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("an SQLite database has no server that can drop a connection")
    from sqlalchemy import create_engine, pool, text

    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    for _ in range(3):  # several connections in the pool
        assert c.get(f"/api/rounds/{state['game_id']}").status_code == 200
    pids = _pooled_backend_pids(store)
    assert pids
    killer = create_engine(store.engine.url, poolclass=pool.NullPool)
    try:
        with killer.connect() as conn:
            dropped = conn.execute(text("SELECT count(*) FROM unnest(CAST(:pids AS int[])) AS p "
                                        "WHERE pg_terminate_backend(p)"), {"pids": pids}).scalar_one()
    finally:
        killer.dispose()
    assert dropped == len(pids)

    request_id = str(uuid.uuid4())
    statuses = []
    for _ in range(3):
        r = c.guess(state["game_id"], state["classes"][0], "ears", request_id=request_id, step=state["step"])
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    assert statuses[-1] == 200 and statuses.count(503) <= 1, statuses
    assert c.get(f"/api/rounds/{state['game_id']}").status_code == 200  # no stale connection left
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess).where(Guess.request_id == request_id)) == 1


def test_the_pool_keeps_a_connection_for_every_request_served_at_once(store):
    """Requests past the connections the pool keeps would each open a connection (on PostgreSQL a
    new server process and a password exchange) and close it again: under load that cost more
    than the requests' own queries."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are files opened in this process")
    from netreveal.web.app import request_limit

    assert store.engine.pool.size() >= request_limit(store)
    opened = []
    event.listen(store.engine, "connect", lambda *_: opened.append(1))
    held = [store.engine.connect() for _ in range(request_limit(store))]
    for c in held:
        c.close()
    first = len(opened)
    held = [store.engine.connect() for _ in range(request_limit(store))]  # the same number again: reused
    for c in held:
        c.close()
    assert len(opened) == first
