# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Accounts over HTTP, on SQLite and PostgreSQL: password rules, changing a password, an admin's
password reset (page, JSON and ``netreveal account reset-password``), logging out everywhere,
and the sessions' idle timeout besides their absolute lifetime."""

import io
from datetime import datetime, timedelta, timezone

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from sqlalchemy import func, select, update
from webstudy import PASSWORD, Client, counts, make_account

from netreveal.store import accounts
from netreveal.store.models import WebSession
from netreveal.store.passwords import common_passwords, password_problem
from netreveal.web.app import create_app

NEW_PASSWORD = "violet-anchor-93"


@pytest.fixture
def app(store):
    make_tiny_study(store)
    return create_app(store, rate_limit=None)


def logged_in(app, store, username, role="player"):
    make_account(store, username, role=role)
    c = Client(app)
    assert c.login(username).status_code == 200
    return c


def sessions_of(store, username) -> int:
    with store.session() as s:
        account = accounts.find_account(s, username)
        return s.scalar(select(func.count()).select_from(WebSession).where(WebSession.account_id == account.id))


# ---- password rules ----------------------------------------------------------------------------

def test_password_rules():
    assert len(common_passwords()) > 300 and "password" in common_passwords()
    refused = {
        "short1!": "8-256", "x" * 257: "8-256", "aaaaaaaaaa": "one character", "          ": "one character",
        "Password": "too common", "PASSWORD123": "too common", "password123": "too common",
        "Monkey2024!": "too common", "123qwerty": "too common", "qwertyuiop": "too common",
        "!!iloveyou!!": "too common", "12345678": "too common", "1234567890": "too common",
    }
    for password, why in refused.items():
        assert why in password_problem(password, "someone"), password
    assert "be the user name" in password_problem("Alice.Smith", "alice.smith")
    assert "contain the user name" in password_problem("alice-2024-xyz", "Alice")
    for fine in (PASSWORD, NEW_PASSWORD, "correct horse", "a long password", "Ωmega-7-straße"):
        assert password_problem(fine, "alice") is None, fine
    assert password_problem(None) is not None


def test_sign_up_refuses_weak_passwords(store, app):
    c = Client(app)
    before = counts(store)
    for password, why in (("password1", "too common"), ("sunshine99", "too common"), ("zzzzzzzz", "one character"),
                          ("newbie2000", "contain the user name"), ("NEWBIE12", "contain the user name"),
                          ("short", "8-256")):
        r = c.signup("newbie", password=password)
        assert r.status_code == 400 and why in r.json()["detail"], password
    assert counts(store) == before
    form = c.http.post("/signup", data={"username": "newbie", "password": "iloveyou", "csrf_token": c.csrf})
    assert form.status_code == 400 and "too common" in form.text
    assert counts(store) == before
    assert c.signup("newbie").status_code == 201


# ---- changing a password -----------------------------------------------------------------------

def test_changing_my_password_ends_my_other_sessions(store, app):
    here = logged_in(app, store, "olga")
    there = Client(app)
    assert there.login("olga").status_code == 200
    assert sessions_of(store, "olga") == 2
    url = "/api/account/password"
    r = here.post(url, {"current_password": "not it", "new_password": NEW_PASSWORD})
    assert r.status_code == 403 and "current password" in r.json()["detail"]
    for weak, why in (("olga-2025-x", "user name"), ("letmein123", "too common"), (PASSWORD, "current one")):
        r = here.post(url, {"current_password": PASSWORD, "new_password": weak})
        assert r.status_code == 400 and why in r.json()["detail"], weak
    assert here.http.post(url, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}).status_code == 403
    assert sessions_of(store, "olga") == 2  # nothing changed so far
    r = here.post(url, {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 200
    here.csrf = r.json()["csrf_token"]
    assert sessions_of(store, "olga") == 1
    assert there.get("/api/stats").status_code == 401  # the other browser is logged out
    assert here.get("/api/stats").status_code == 200  # this one goes on, with a new session
    assert here.post("/api/rounds").status_code == 200
    assert Client(app).login("olga").status_code == 401
    assert Client(app).login("olga", NEW_PASSWORD).status_code == 200


def test_changing_my_password_on_the_account_page(store, app):
    c = logged_in(app, store, "petra")
    other = Client(app)
    other.login("petra")
    page = c.get("/account")
    assert page.status_code == 200 and 'action="/account/password"' in page.text
    assert '<b id="session-count">2</b>' in page.text and "120 minutes" in page.text
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": "different-93-x",
            "csrf_token": c.csrf}
    r = c.http.post("/account/password", data=form)
    assert r.status_code == 400 and "differ" in r.text
    r = c.http.post("/account/password", data={**form, "new_password_again": NEW_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account?message=password"
    done = c.get("/account?message=password")
    assert "Password changed" in done.text and '<b id="session-count">1</b>' in done.text
    assert other.get("/api/stats").status_code == 401
    assert Client(app).get("/account", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303


# ---- an admin's reset --------------------------------------------------------------------------

def test_an_admin_resets_a_password_and_ends_that_accounts_sessions(store, app):
    admin = logged_in(app, store, "root", "admin")
    victim = logged_in(app, store, "vera")
    victim2 = Client(app)
    victim2.login("vera")
    assert victim.post("/api/admin/password", {"username": "root", "new_password": NEW_PASSWORD}).status_code == 403
    before = counts(store)
    for body, status in (({"username": "ghost", "new_password": NEW_PASSWORD}, 404),
                         ({"username": "vera", "new_password": "password!"}, 400),
                         ({"username": "vera", "new_password": "vera-vera-vera"}, 400),
                         ({"username": "root", "new_password": NEW_PASSWORD}, 409)):
        assert admin.post("/api/admin/password", body).status_code == status, body
    assert counts(store) == before
    r = admin.post("/api/admin/password", {"username": "VERA", "new_password": NEW_PASSWORD})
    assert r.status_code == 200 and r.json() == {"username": "vera", "sessions_ended": 2}
    assert victim.get("/api/stats").status_code == 401 and victim2.get("/api/stats").status_code == 401
    assert Client(app).login("vera").status_code == 401
    assert Client(app).login("vera", NEW_PASSWORD).status_code == 200
    # the admin page's form
    page = admin.get("/admin")
    assert 'action="/admin/password"' in page.text
    r = admin.http.post("/admin/password", data={"username": "vera", "new_password": PASSWORD,
                                                 "csrf_token": admin.csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin?message=password"
    assert sessions_of(store, "vera") == 0
    assert Client(app).login("vera").status_code == 200
    bad = admin.http.post("/admin/password", data={"username": "vera", "new_password": "abc",
                                                   "csrf_token": admin.csrf})
    assert bad.status_code == 400 and "8-256" in bad.text


def test_reset_password_command(store, store_url, app, monkeypatch, capsys):
    from netreveal.cli import main

    c = logged_in(app, store, "wendy")
    monkeypatch.setattr("sys.stdin", io.StringIO(NEW_PASSWORD + "\n"))
    assert main(["account", "reset-password", "wendy", "--database-url", store_url]) == 0
    assert capsys.readouterr().out.strip() == "password of wendy reset; 1 session(s) ended"
    assert c.get("/api/stats").status_code == 401
    assert Client(app).login("wendy", NEW_PASSWORD).status_code == 200
    for stdin, name, message in (("qwerty123\n", "wendy", "too common"), (NEW_PASSWORD + "\n", "nobody", "no account"),
                                 ("wendy-2025!\n", "wendy", "user name")):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        assert main(["account", "reset-password", name, "--database-url", store_url]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("password123\n"))
    assert main(["account", "add", "xena", "--database-url", store_url]) == 2
    assert "too common" in capsys.readouterr().err
    assert Client(app).login("wendy", NEW_PASSWORD).status_code == 200


# ---- logging out everywhere --------------------------------------------------------------------

def test_log_out_everywhere(store, app):
    a = logged_in(app, store, "yuri")
    b, c = Client(app), Client(app)
    b.login("yuri")
    c.login("yuri")
    other = logged_in(app, store, "zack")
    assert a.http.post("/api/logout-everywhere").status_code == 403  # CSRF
    r = a.post("/api/logout-everywhere")
    assert r.status_code == 200 and r.json() == {"account": None, "sessions_ended": 3}
    for client in (a, b, c):
        assert client.get("/api/stats").status_code == 401
    assert other.get("/api/stats").status_code == 200  # another account is untouched
    page = other.get("/account")
    assert 'action="/account/logout-everywhere"' in page.text
    r = other.http.post("/account/logout-everywhere", data={"csrf_token": other.csrf}, follow_redirects=False)
    assert r.status_code == 303 and sessions_of(store, "zack") == 0


# ---- idle timeout ------------------------------------------------------------------------------

def _last_seen(store, username):
    with store.session() as s:
        account = accounts.find_account(s, username)
        return s.scalars(select(WebSession.last_seen_at).where(WebSession.account_id == account.id)).one()


def _set_last_seen(store, username, ago: timedelta, created_ago: timedelta | None = None):
    with store.session() as s:
        account = accounts.find_account(s, username)
        now = datetime.now(timezone.utc)
        values = {"last_seen_at": None if ago is None else now - ago}
        if created_ago is not None:
            values["created_at"] = now - created_ago
        s.execute(update(WebSession).where(WebSession.account_id == account.id).values(**values))


def _utc(value):
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_idle_sessions_end_and_activity_is_written_at_most_once_a_minute(store):
    make_tiny_study(store)
    app = create_app(store, rate_limit=None, session_idle=timedelta(minutes=30))
    c = logged_in(app, store, "ida")
    # recent activity is not written again
    _set_last_seen(store, "ida", timedelta(seconds=20))
    stamp = _last_seen(store, "ida")
    for _ in range(3):
        assert c.get("/api/stats").status_code == 200
    assert _last_seen(store, "ida") == stamp
    # older than a minute: written (once) and the session goes on
    _set_last_seen(store, "ida", timedelta(minutes=29))
    assert c.get("/api/stats").status_code == 200
    seen = _utc(_last_seen(store, "ida"))
    assert datetime.now(timezone.utc) - seen < timedelta(seconds=30)
    assert c.get("/api/stats").status_code == 200 and _utc(_last_seen(store, "ida")) == seen
    # 30 minutes without activity: logged out, though the session's lifetime is not over
    _set_last_seen(store, "ida", timedelta(minutes=31))
    assert c.get("/api/stats").status_code == 401
    assert c.get("/account", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303
    # a session from before last_seen_at existed counts from its creation
    d = logged_in(app, store, "jon")
    _set_last_seen(store, "jon", None, created_ago=timedelta(minutes=10))
    assert d.get("/api/stats").status_code == 200 and _last_seen(store, "jon") is not None
    _set_last_seen(store, "jon", None, created_ago=timedelta(minutes=40))
    assert d.get("/api/stats").status_code == 401
    # the absolute lifetime still ends an active session
    e = logged_in(app, store, "kim")
    with store.session() as s:
        s.execute(update(WebSession).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert e.get("/api/stats").status_code == 401
    # a new log-in prunes the idle and expired rows
    logged_in(app, store, "lea")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1


def test_idle_timeout_is_configurable_and_checked(store, tmp_path, capsys):
    from netreveal.cli import main
    from netreveal.errors import NetrevealError

    make_tiny_study(store)
    default = create_app(store, rate_limit=None)
    assert default.state.session_idle == accounts.SESSION_IDLE == timedelta(hours=2)
    with pytest.raises(NetrevealError, match="idle timeout must be positive"):
        create_app(store, session_idle=timedelta(0))
    for minutes in ("0", "-5", "nan", "30000"):
        assert main(["serve", "--idle-minutes", minutes, "--database-url", str(tmp_path / "none.db")]) == 2
        assert "--idle-minutes must be" in capsys.readouterr().err
