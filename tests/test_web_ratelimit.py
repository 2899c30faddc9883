# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Rate limits that a client cannot dodge: per address (no forged X-Forwarded-For; sign-ups and
failed log-ins counted in the database), per account (failed log-ins) and per player (guesses),
all across server processes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cli_checks import fails_with_one_line
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from sqlalchemy import event, func, select, update
from webstudy import Client, Served, make_web_study, study_ids

from netreveal.store import accounts, open_store
from netreveal.store.models import Account, AddressLimit, Guess, LoginThrottle
from netreveal.store.throttles import (
    LoginBackoff,
    LoginThrottled,
    address_events,
    claim_login_attempt,
    count_address_event,
    forget_ended_windows,
    recent_guess_columns,
)
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)
FORGED = [f"203.0.113.{i}" for i in range(1, 23)]  # 22 addresses a client claims to come from


# ---- client addresses: X-Forwarded-For only from trusted proxies (the real server) ---------------

@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "served.db"
    opened = open_store(path)
    try:
        make_web_study(opened)
    finally:
        opened.close()
    return str(path)


def test_forged_forwarded_for_does_not_lift_the_signup_limit(study_file):
    """20 sign-ups a minute per address (the default): 22 clients on loopback claiming 22 addresses
    are one address to the server."""
    with Served(study_file) as served:
        statuses = [served.signup(f"forger{i}", {"X-Forwarded-For": ip}).status_code for i, ip in enumerate(FORGED)]
        r = httpx.get(served.url + "/api/session", headers={"X-Forwarded-Proto": "https"})
    assert statuses == [201] * 20 + [429] * 2
    assert "Secure" not in r.headers["set-cookie"]  # nor the scheme


def test_forwarded_headers_are_trusted_from_the_given_proxies_only(study_file):
    with Served(study_file, "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8") as served:
        statuses = [served.signup(f"proxied{i}", {"X-Forwarded-For": ip}).status_code for i, ip in enumerate(FORGED)]
        assert statuses == [201] * 22  # each forwarded address counts alone
        for proto, secure in (("https", True), ("http", False)):  # the proxy's scheme sets the cookie flag
            r = httpx.get(served.url + "/api/session", headers={"X-Forwarded-Proto": proto})
            assert ("Secure" in r.headers["set-cookie"]) is secure


def test_bad_forwarded_allow_ips_is_one_line_error(capsys, study_file):
    fails_with_one_line(capsys, ["serve", "--database-url", study_file, "--forwarded-allow-ips", "127.0.0.1,proxy"],
                        "'proxy' is not an IP address or network")


# ---- sign-ups and failed log-ins per client address (in the database) ----------------------------

def end_address_windows(store):
    """Every address's window began over a minute ago (as if a minute had passed)."""
    with store.session() as s:
        s.execute(update(AddressLimit).values(window_start=datetime.now(timezone.utc) - timedelta(seconds=61)))


def test_signup_limit_of_an_address_holds_across_two_app_processes(store, store_url, ids):
    """Two apps on two engines (as two server processes would be) share one address's sign-ups."""
    other = open_store(store_url)
    try:
        limit = RateLimit(guesses=100, signups=3, failed_logins=100)
        apps = [create_app(store, rate_limit=limit), create_app(other, rate_limit=limit)]
        answers = [Client(apps[i % 2]).signup(f"twin{i}") for i in range(5)]
        assert [r.status_code for r in answers] == [201] * 3 + [429] * 2
        assert 55 <= int(answers[3].headers["retry-after"]) <= 60
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Account)) == 3
            assert s.execute(select(AddressLimit.kind, AddressLimit.address, AddressLimit.events)).all() == [
                ("signups", "testclient", 3)]
        # a refused name (taken) is not counted: its account and its count roll back together
        assert Client(apps[1]).signup("twin0").status_code == 429  # still refused before anything
        end_address_windows(store)
        assert Client(apps[1]).signup("twin0").status_code == 409
        assert Client(apps[0]).signup("twin5").status_code == 201
        with store.session() as s:
            assert s.scalar(select(AddressLimit.events)) == 1
    finally:
        other.close()


def test_failed_logins_of_an_address_are_shared_by_two_app_processes(store, store_url, ids):
    """Wrong passwords for names that do not exist (no account to throttle) and a wrong current
    password on the account page count against the address in every process."""
    other = open_store(store_url)
    try:
        limit = RateLimit(guesses=100, signups=100, failed_logins=3)
        a, b = Client(create_app(store, rate_limit=limit)), Client(create_app(other, rate_limit=limit))
        assert a.signup("owner").status_code == 201
        statuses = [(a, b)[i % 2].login(f"nobody{i}", "wrong-password").status_code for i in range(5)]
        assert statuses == [401] * 3 + [429] * 2
        assert b.login("owner").status_code == 429  # the right password waits too
        end_address_windows(store)
        assert b.login("owner").status_code == 200
        changes = [a.post("/api/account/password", {"current_password": "not-it", "new_password": "new-pass-77"})
                   for _ in range(3)]
        assert [r.status_code for r in changes] == [403] * 3
        r = b.login("owner", "still-wrong")
        assert r.status_code == 429 and 55 <= int(r.headers["retry-after"]) <= 60
    finally:
        other.close()


def test_parallel_events_of_one_address_get_only_the_allowed_ones(store):
    """Each event is counted by one atomic statement: a burst cannot slip through together."""
    results: list[float | None] = []
    start = threading.Barrier(12)

    def attempt():
        start.wait()
        with store.session() as s:
            results.append(count_address_event(s, "signups", "198.51.100.7", 5, 60.0))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r is None for r in results) == 5
    assert all(r is None or 0 < r <= 60 for r in results) and len(results) == 12
    with store.session() as s:
        assert address_events(s, "signups", "198.51.100.7", 60.0)[0] == 5


def test_address_window_begins_with_its_first_event_and_ended_windows_are_forgotten(store):
    t = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    with store.session() as s:
        waits = [count_address_event(s, "failed_logins", "a", 2, 60.0, now=t + timedelta(seconds=i * 10))
                 for i in range(3)]
        assert waits == [None, None, 40.0]  # the window began at t
        assert count_address_event(s, "failed_logins", "b", 2, 60.0, now=t + timedelta(seconds=20)) is None
        assert address_events(s, "failed_logins", "a", 60.0, now=t + timedelta(seconds=30)) == (2, t)
        assert address_events(s, "signups", "a", 60.0, now=t) == (0, None)  # kinds count apart
        assert count_address_event(s, "failed_logins", "a", 2, 60.0, now=t + timedelta(seconds=60)) is None
        assert address_events(s, "failed_logins", "a", 60.0, now=t + timedelta(seconds=61)) == (
            1, t + timedelta(seconds=60))
        forget_ended_windows(s, 60.0, now=t + timedelta(seconds=80))  # b's window ended at t + 80 s
        assert s.execute(select(AddressLimit.address)).scalars().all() == ["a"]


# ---- failed log-ins per account (in the database) ------------------------------------------------

@pytest.fixture
def ids(store):
    return study_ids(store, make_tiny_study(store))


def add_account(store, name="victim", password="right-password"):
    with store.session() as s:
        return accounts.create_account(s, name, password).id


def throttle_row(store, account_id):
    with store.session() as s:
        row = s.get(LoginThrottle, account_id)
        return None if row is None else (row.failures, row.blocked_until)


def test_wrong_passwords_for_one_account_are_throttled_across_two_app_processes(store, store_url, ids):
    """Two apps on two engines (as two server processes would be) share one account's count."""
    victim = add_account(store)
    other = open_store(store_url)
    try:
        apps = [create_app(store, rate_limit=ROOMY), create_app(other, rate_limit=ROOMY)]
        clients = [Client(a) for a in apps]
        statuses, answers = [], []
        for i in range(40):
            r = clients[i % 2].login("victim", f"wrong-password-{i}")
            statuses.append(r.status_code)
            answers.append(r)
        assert statuses == [401] * 5 + [429] * 35
        throttled = answers[5]
        assert 25 <= int(throttled.headers["retry-after"]) <= 30
        assert "too many wrong passwords for this account: try again in" in throttled.json()["detail"]
        assert throttle_row(store, victim)[0] == 5  # refused attempts are not counted
        # the right password is refused too while the account waits, in the form as in the API
        assert clients[0].login("victim", "right-password").status_code == 429
        page = clients[1].http.post("/login", data={"username": "victim", "password": "right-password",
                                                    "csrf_token": clients[1].csrf},
                                    headers={"accept": "text/html"})
        assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
        assert "too many wrong passwords" in page.text
        # the back-off over: the right password logs in and the count starts again
        with store.session() as s:
            s.execute(update(LoginThrottle).values(blocked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        assert clients[1].login("victim", "right-password").status_code == 200
        assert throttle_row(store, victim) is None
        assert [clients[0].login("victim", "wrong").status_code for _ in range(5)] == [401] * 5
        # unknown names leave nothing behind
        assert clients[0].login("nobody", "wrong-password").status_code == 401
    finally:
        other.close()
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(LoginThrottle)) == 1


def test_backoff_doubles_up_to_fifteen_minutes_and_is_forgotten_after_a_day(store):
    victim = add_account(store)
    backoff = LoginBackoff()
    t = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    waits = []
    for attempt in range(1, 13):
        with store.session() as s:
            assert claim_login_attempt(s, victim, backoff, now=t) == attempt
        failures, until = throttle_row(store, victim)
        assert failures == attempt
        wait = None if until is None else (until.replace(tzinfo=timezone.utc) - t).total_seconds()
        waits.append(wait)
        if wait:
            with store.session() as s, pytest.raises(LoginThrottled) as refused:  # during the back-off
                claim_login_attempt(s, victim, backoff, now=t + timedelta(seconds=wait - 1))
            assert refused.value.status == 429 and refused.value.retry_after == 1
            assert throttle_row(store, victim)[0] == attempt  # not counted
            t += timedelta(seconds=wait)
        else:
            t += timedelta(seconds=1)
    assert waits == [None] * 4 + [30, 60, 120, 240, 480, 900, 900, 900]
    with store.session() as s:  # a day after the last failure, the count starts again
        assert claim_login_attempt(s, victim, backoff, now=t + timedelta(days=1)) == 1
    assert throttle_row(store, victim)[1] is None


def test_parallel_wrong_passwords_get_only_the_free_attempts(store):
    """Attempts are counted before the password is checked: a burst cannot slip through together."""
    victim = add_account(store)
    results: list[object] = []
    start = threading.Barrier(12)

    def attempt():
        start.wait()
        try:
            with store.session() as s:
                results.append(claim_login_attempt(s, victim))
        except LoginThrottled as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    counted = sorted(r for r in results if isinstance(r, int))
    assert counted == [1, 2, 3, 4, 5]
    assert sum(isinstance(r, LoginThrottled) for r in results) == 7


# ---- guesses per player, counted in the database ------------------------------------------------

def wrong_class(ids, item_id):
    return next(c for c in ("cat", "dog", "fox") if c != ids["answer"][item_id])


def test_guess_limit_holds_over_two_app_processes(store, store_url, ids):
    other = open_store(store_url)
    try:
        limit = RateLimit(guesses=4, signups=100, failed_logins=100)
        a, b = Client(create_app(store, rate_limit=limit)), Client(create_app(other, rate_limit=limit))
        assert a.signup("twin").status_code == 201
        assert b.login("twin").status_code == 200
        state = a.start()
        wrong = wrong_class(ids, state["item_id"])
        statuses = [(a, b)[i % 2].guess(state["game_id"], wrong, "x").status_code for i in range(6)]
        assert statuses == [200] * 4 + [429] * 2
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Guess)) == 4
    finally:
        other.close()


def test_default_limits_let_a_fast_player_play_eight_rounds(store, ids):
    """Two reveals and four wrong guesses a round, as fast as the server answers: 48 moves."""
    c = Client(create_app(store))
    assert c.signup("quick").status_code == 201
    for _ in range(8):
        state = c.start()
        for step in (1, 2):
            r = c.post(f"/api/rounds/{state['game_id']}/reveal", {"from_step": step})
            assert r.status_code == 200, r.text
        outcome = None
        while outcome is None:
            r = c.guess(state["game_id"], wrong_class(ids, state["item_id"]), "stripes")
            assert r.status_code == 200, r.text
            outcome = r.json()["outcome"]
        assert outcome == "loss"
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Guess)) == 32


def test_default_guess_limit_stops_a_script(store, ids):
    """60 guesses within the last minute: the next one waits until the oldest is a minute old."""
    c = Client(create_app(store))
    assert c.signup("script").status_code == 201
    state = c.start()
    with store.session() as s:
        me = s.scalars(select(Account.id).where(Account.username == "script")).one()
        then = datetime.now(timezone.utc) - timedelta(seconds=30)
        s.add_all(Guess(item_id=ids["items"][-1], player_id=me, player_name="script", step=1, guessed_class="cat",
                        text="x", correct=False, created_at=then + timedelta(milliseconds=i)) for i in range(60))
    r = c.guess(state["game_id"], wrong_class(ids, state["item_id"]), "x")
    assert r.status_code == 429 and 25 <= int(r.headers["retry-after"]) <= 31
    with store.session() as s:  # half a minute later
        s.execute(update(Guess).where(Guess.game_id.is_(None)).values(created_at=then - timedelta(seconds=31)))
    assert c.guess(state["game_id"], wrong_class(ids, state["item_id"]), "x").status_code == 200


def test_guess_count_reads_only_the_index(tmp_path):
    """The count behind the guess limit (in the query that reads the round) is answered from the
    index on (player, time)."""
    opened = open_store(tmp_path / "plan.db")
    seen = []
    event.listen(opened.engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, parameters, _context, _many: seen.append((statement, parameters)))
    try:
        with opened.session() as s:
            found = s.execute(select(*recent_guess_columns()),
                              {"player_id": 1, "recent_since": datetime.now(timezone.utc)}).one()
            assert tuple(found) == (0, None)
        assert len(seen) == 1
        with opened.engine.connect() as conn:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + seen[0][0], seen[0][1])
            plan = [str(row[-1]) for row in rows]
        searches = [line for line in plan if "recent" in line]
        assert len(searches) == 2 and all("COVERING INDEX ix_guesses_player_time" in line for line in searches), plan
    finally:
        opened.close()
