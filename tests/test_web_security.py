"""Bad input to the web app: each gets the right 4xx and leaves the database as it was."""

import uuid

import pytest
from dbs import make_tiny_study, store_url  # noqa: F401  (fixture: a fresh SQLite or PostgreSQL database)
from sqlalchemy import select
from webstudy import (
    PASSWORD,
    Client,
    LiveServer,
    build_template,
    copy_store,
    counts,
    make_account,
    make_web_study,
    raw_get,
    study_ids,
)

from netreveal.store import accounts, open_store
from netreveal.store.models import Account, Guess
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE guesses; -- \" OR 1=1"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "sec.db"
    return path, build_template(path)


@pytest.fixture
def store(tmp_path, template):
    store = copy_store(template[0], tmp_path / "sec.db")
    yield store
    store.close()


@pytest.fixture
def ids(store, template):
    return template[1]


@pytest.fixture
def app(store, ids):
    return create_app(store, "tiny", rate_limit=ROOMY)


@pytest.fixture
def playing(app, ids):
    """A player with an open round: (client, round state)."""
    c = Client(app)
    assert c.signup("player1").status_code == 201
    return c, c.start()


def admin_client(app, store, name="root"):
    with store.session() as s:
        accounts.create_account(s, name, "admin-password", role="admin")
    c = Client(app)
    assert c.login(name, "admin-password").status_code == 200
    return c


def unchanged(store, before):
    assert counts(store) == before


# ---- escaping and literal storage --------------------------------------------------------------

def test_xss_in_a_label_is_stored_literally_and_escaped_on_every_page(store, ids, app, playing):
    c, state = playing
    r = c.guess(state["game_id"], "fish", XSS)
    assert r.status_code == 200
    with store.session() as s:
        assert s.scalars(select(Guess.text)).all() == [XSS]
    page = c.get("/stats")
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
    # a form that shows back what was typed escapes it too
    d = Client(app)
    login = d.http.post("/login", data={"username": XSS[:40], "password": "x", "csrf_token": d.csrf})
    assert login.status_code == 401 and "<script>" not in login.text and 'value="&lt;script&gt;' in login.text
    # JSON carries the text as data, never as HTML
    api = c.get(f"/api/rounds/{state['game_id']}")
    assert api.headers["content-type"] == "application/json" and api.headers["x-content-type-options"] == "nosniff"
    assert api.json()["guesses"][0]["text"] == XSS


def test_sql_looking_strings_are_stored_literally_and_harmless(store, ids, app, playing):
    c, state = playing
    assert c.guess(state["game_id"], "fish", SQL).status_code == 200
    with store.session() as s:
        assert s.scalars(select(Guess.text)).all() == [SQL]
    before = counts(store)
    d = Client(app)
    assert d.login("player1' OR '1'='1", "x' OR '1'='1").status_code == 401
    assert d.login("player1", "' OR ''='").status_code == 401
    assert d.signup("bob'; DROP TABLE accounts;--").status_code == 400
    unchanged(store, before)
    assert "player1" in c.get("/leaderboard").text


def test_bad_usernames_and_passwords_are_refused(store, app):
    c = Client(app)
    before = counts(store)
    for name, status in ((XSS[:30], 400), ("ab", 400), ("x" * 31, 400), ("x" * 41, 422), ("_lead", 400),
                         ("space name", 400), ("ünïcode", 400), ("tab\tname", 400), ("", 400)):
        assert c.signup(name).status_code == status, name
    assert c.signup("fine_name", password="short").status_code == 400
    assert c.signup("fine_name", password="x" * 257).status_code == 422
    assert c.post("/api/signup", {"username": "fine_name", "password": PASSWORD, "role": "root"}).status_code == 403
    assert c.post("/api/signup", {"username": ["list"], "password": PASSWORD}).status_code == 422
    form = c.http.post("/signup", data={"username": XSS[:30], "password": PASSWORD, "csrf_token": c.csrf})
    assert form.status_code == 400 and "<script>" not in form.text and "&lt;script&gt;" in form.text
    unchanged(store, before)


def test_over_long_and_malformed_guesses_store_nothing(store, ids, app, playing):
    c, state = playing
    gid = state["game_id"]
    before = counts(store)
    cases = [
        ({"text": "x" * 101}, 400), ({"text": "x" * 401}, 422), ({"text": "   "}, 400), ({"text": "a\u0000b"}, 400),
        ({"text": "evil\u202etxt"}, 400), ({"guessed_class": "unicorn"}, 400), ({"guessed_class": XSS[:80]}, 400),
        ({"guessed_class": "x" * 81}, 422), ({"request_id": "not-a-uuid"}, 400), ({"request_id": "1" * 65}, 422),
        ({"request_id": SQL}, 400), ({"language": "english"}, 400), ({"language": "<b>"}, 400),
        ({"step": 0}, 422), ({"step": 7}, 422), ({"step": 2}, 409), ({"text": 5}, 422),
    ]
    for change, status in cases:
        body = {"request_id": str(uuid.uuid4()), "guessed_class": "cat", "text": "ok", **change}
        r = c.post(f"/api/rounds/{gid}/guesses", body)
        assert r.status_code == status, (change, r.text)
        assert "detail" in r.json()
    r = c.http.post(f"/api/rounds/{gid}/guesses", content=b"{not json", headers={"X-CSRF-Token": c.csrf,
                                                                                 "content-type": "application/json"})
    assert r.status_code == 422
    unchanged(store, before)


# ---- unknown ids -------------------------------------------------------------------------------

def test_unknown_ids_are_404(store, ids, app, playing):
    c = playing[0]
    other = make_web_study(store, name="other")  # same database, not served
    d = Client(app)
    d.signup("player2")
    theirs = d.start()
    before = counts(store)
    for path in ("/api/rounds/999999", "/api/rounds/abc", f"/api/rounds/{theirs['game_id']}", "/api/rounds/-1",
                 "/media/999999.png", "/media/abc.png", f"/media/{other['frames'][other['items'][0]][0]}.png",
                 f"/media/{theirs['frame_media_id']}.png", "/no/such/page"):
        assert c.get(path).status_code == 404, path
    for path in (f"/api/rounds/{theirs['game_id']}/guesses", "/api/rounds/999999/guesses"):
        r = c.post(path, {"request_id": str(uuid.uuid4()), "guessed_class": "cat", "text": "x"})
        assert r.status_code == 404, path
    for action in ("reveal", "resign"):
        assert c.post(f"/api/rounds/{theirs['game_id']}/{action}").status_code == 404
    assert c.get("/no/such/page", headers={"accept": "text/html"}).status_code == 404
    unchanged(store, before)


def test_players_see_only_frames_they_reached(store, ids, app, playing):
    c, state = playing
    frames = ids["frames"][state["item_id"]]
    assert c.get(f"/media/{frames[0]}.png").status_code == 200
    assert c.get(f"/media/{frames[1]}.png").status_code == 404  # step 2 is not shown yet
    assert c.get(f"/media/{ids['image_media'][state['item_id']]}.png").status_code == 404
    assert c.get(f"/media/{ids['map_media'][state['item_id']]}.png").status_code == 404
    c.post(f"/api/rounds/{state['game_id']}/reveal", {"from_step": 1})
    assert c.get(f"/media/{frames[1]}.png").status_code == 200
    c.post(f"/api/rounds/{state['game_id']}/resign")
    assert c.get(f"/media/{ids['image_media'][state['item_id']]}.png").status_code == 200  # shown once over
    anonymous = Client(app)
    assert anonymous.get(f"/media/{frames[0]}.png").status_code == 404
    make_account(store, "namer", role="annotator")
    annotator = Client(app)
    annotator.login("namer")
    assert annotator.get(f"/media/{frames[5]}.png").status_code == 200


# ---- CSRF --------------------------------------------------------------------------------------

def test_missing_or_wrong_csrf_token_is_403_and_stores_nothing(store, ids, app, playing):
    c, state = playing
    gid = state["game_id"]
    guess = {"request_id": str(uuid.uuid4()), "guessed_class": "cat", "text": "x"}
    before = counts(store)
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        for path, body in ((f"/api/rounds/{gid}/guesses", guess), ("/api/rounds", None),
                           (f"/api/rounds/{gid}/reveal", None), (f"/api/rounds/{gid}/resign", None),
                           ("/api/logout", None)):
            r = c.http.post(path, json=body, headers=headers)
            assert r.status_code == 403, (path, headers)
            assert "CSRF" in r.json()["detail"]
    r = c.http.post("/logout", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    unchanged(store, before)
    assert c.get("/api/stats").status_code == 200  # still logged in


def test_csrf_for_visitors_who_are_not_logged_in(store, app):
    before = counts(store)
    fresh = Client(app)
    body = {"username": "newbie", "password": PASSWORD}
    assert fresh.http.post("/api/signup", json=body).status_code == 403
    assert fresh.http.post("/api/signup", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    assert fresh.http.post("/signup", data={**body, "csrf_token": "guess"}).status_code == 403
    stranger = Client(app)  # another visitor's token does not work with this visitor's cookie
    assert fresh.http.post("/api/signup", json=body, headers={"X-CSRF-Token": stranger.csrf}).status_code == 403
    unchanged(store, before)
    old = fresh.csrf
    assert fresh.signup("newbie").status_code == 201
    # the visitor's token dies with the log-in: the session has its own
    assert fresh.http.post("/api/rounds", headers={"X-CSRF-Token": old}).status_code == 403


# ---- roles -------------------------------------------------------------------------------------

def test_players_and_visitors_cannot_use_admin_routes(store, ids, app, playing):
    c, _ = playing
    before = counts(store)
    for path in ("/admin", "/admin/export.zip", "/api/admin/progress"):
        assert c.get(path).status_code == 403, path
        assert Client(app).get(path).status_code == 401, path
    assert Client(app).get("/admin", headers={"accept": "text/html"}, follow_redirects=False).headers[
        "location"] == "/login?next=/admin"
    assert c.post("/api/admin/role", {"username": "player1", "role": "admin"}).status_code == 403
    r = c.http.post("/admin/role", data={"username": "player1", "role": "admin", "csrf_token": c.csrf})
    assert r.status_code == 403
    annotator = Client(app)
    refused = annotator.signup("namer", role="annotator")  # annotators come only from an admin
    assert refused.status_code == 403 and "invitation" in refused.json()["detail"]
    unchanged(store, before)
    make_account(store, "namer", role="annotator")
    assert annotator.login("namer").status_code == 200
    assert annotator.get("/admin").status_code == 403


def test_admin_changes_roles_but_not_their_own(store, ids, app, playing):
    admin = admin_client(app, store)
    assert admin.post("/api/admin/role", {"username": "player1", "role": "annotator"}).json()["role"] == "annotator"
    before = counts(store)
    assert admin.post("/api/admin/role", {"username": "root", "role": "player"}).status_code == 409
    assert admin.post("/api/admin/role", {"username": "ghost", "role": "admin"}).status_code == 404
    assert admin.post("/api/admin/role", {"username": "player1", "role": "emperor"}).status_code == 400
    assert admin.http.post("/api/admin/role", json={"username": "player1", "role": "admin"}).status_code == 403
    unchanged(store, before)
    page = admin.get("/admin")
    assert page.status_code == 200 and "player1" in page.text


# ---- paths -------------------------------------------------------------------------------------

TRAVERSALS = ["/media/../../etc/passwd", "/media/..%2f..%2fetc%2fpasswd", "/media/%2e%2e/%2e%2e/etc/passwd",
              "/media/1.png/../../../etc/passwd", "/static/..%2f..%2fapp.py", "/static/../app.py",
              "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%5c..%5capp.py", "/static/....//app.py",
              "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/media/%00.png", "/static/app.css%00.py"]


def test_path_traversal_on_media_and_static_is_404(store, ids, app, playing):
    c, _ = playing
    before = counts(store)
    for path in TRAVERSALS:
        r = c.get(path)
        assert r.status_code == 404, path
        assert b"root:" not in r.content and b"def create_app" not in r.content
    assert c.get("/static/app.css").status_code == 200
    unchanged(store, before)


def test_path_traversal_sent_raw_to_a_live_server(store, ids, app):
    with LiveServer(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for path in TRAVERSALS + ["/static/../../../../etc/passwd", "/media/../../../../etc/passwd"]:
            assert raw_get(port, path) in (400, 404), path
        assert raw_get(port, "/static/app.js") == 200


# ---- rate limits and headers -------------------------------------------------------------------

def test_failed_logins_and_signups_are_rate_limited(store, ids):
    app = create_app(store, rate_limit=RateLimit(guesses=100, signups=2, failed_logins=3))
    c = Client(app)
    assert [c.login("nobody", PASSWORD).status_code for _ in range(4)] == [401, 401, 401, 429]
    d = Client(app)
    statuses = [d.signup(f"user{i}").status_code for i in range(3)]
    assert statuses[:2] == [201, 201] and statuses[2] in (403, 429)  # a logged-in session has a new token
    e = Client(app)
    before = counts(store)
    assert e.signup("user9").status_code == 429
    unchanged(store, before)


def test_security_headers_and_cookie_flags(store, app):
    c = Client(app)
    r = c.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    r = c.signup("cookie_eater")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    https = Client(app)
    https.http.base_url = "https://testserver"
    https.csrf = https.http.get("/api/session").json()["csrf_token"]
    r = https.signup("secure_one")
    assert "Secure" in r.headers["set-cookie"]
    with store.session() as s:
        assert s.scalar(select(Account).where(Account.username == "secure_one")) is not None


# ---- the same refusals on both backends ----------------------------------------------------------

@pytest.fixture
def any_store(store_url):  # noqa: F811
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_bad_input_is_refused_and_stores_nothing_on_sqlite_and_postgresql(any_store):
    store = any_store
    ids = study_ids(store, make_tiny_study(store))
    app = create_app(store, rate_limit=ROOMY)
    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    gid = state["game_id"]
    for text in (XSS, SQL, "Ωmega 'quoted' \\ back\\slash %_ wildcards"):
        assert c.guess(gid, "fox" if ids["answer"][state["item_id"]] != "fox" else "cat", text).status_code == 200
        if c.get(f"/api/rounds/{gid}").json()["outcome"]:
            gid = c.start()["game_id"]
    with store.session() as s:
        assert s.scalars(select(Guess.text).order_by(Guess.id)).all() == [
            XSS, SQL, "Ωmega 'quoted' \\ back\\slash %_ wildcards"]
    assert "&lt;script&gt;" in c.get("/stats").text and "<script>alert" not in c.get("/stats").text
    before = counts(store)
    guess = {"request_id": str(uuid.uuid4()), "guessed_class": "cat", "text": "ok"}
    assert c.post(f"/api/rounds/{gid}/guesses", {**guess, "text": "x" * 101}).status_code == 400
    assert c.post(f"/api/rounds/{gid}/guesses", {**guess, "guessed_class": SQL[:80]}).status_code == 400
    assert c.post("/api/rounds/999999/guesses", guess).status_code == 404
    assert c.http.post(f"/api/rounds/{gid}/guesses", json=guess).status_code == 403
    assert c.get("/media/999999.png").status_code == 404
    assert c.get("/admin").status_code == 403
    assert c.post("/api/admin/role", {"username": "player1", "role": "admin"}).status_code == 403
    assert Client(app).login("player1' OR '1'='1", SQL).status_code == 401
    assert Client(app).signup("x'; DROP TABLE accounts;--").status_code == 400
    assert c.get("/static/..%2f..%2fapp.py").status_code == 404
    assert counts(store) == before
