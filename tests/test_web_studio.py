"""The naming studio over HTTP: permissions, CSRF, the JSON API end to end, escaping."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_concepts_store import build_study, it

from netreveal.store import accounts
from netreveal.store.models import Account, Concept, ConceptEvent, ConceptMember, StudyImage
from netreveal.web.app import create_app
from netreveal.web.deps import SESSION_COOKIE
from netreveal.web.studio import router as studio_router

API = "/studio/api"


def make_app(store):
    app = create_app(store, rate_limit=None)
    if not any(getattr(route, "path", "").startswith("/studio") for route in app.routes):
        app.include_router(studio_router)
    return app


def login(client: TestClient, store, username: str) -> TestClient:
    """Log ``username`` in on ``client``; send the session's CSRF token with every request."""
    with store.session() as s:
        account = s.scalar(select(Account).where(Account.username == username))
        token, row = accounts.start_session(s, account)
        csrf = row.csrf_token
    client.cookies.set(SESSION_COOKIE, token)
    client.headers["X-CSRF-Token"] = csrf
    return client


@pytest.fixture
def hand(store):
    ids = build_study(store)
    with store.session() as s:
        s.add(Account(username="pat", password_hash="x", role="player"))
    return ids


@pytest.fixture
def app(store, hand):
    return make_app(store)


def client(app, store, username=None):
    c = TestClient(app, follow_redirects=False)
    return login(c, store, username) if username else c


def n_rows(store, model):
    with store.session() as s:
        return len(s.scalars(select(model)).all())


def test_logged_out_visitors_are_sent_to_log_in(app, store):
    c = client(app, store)
    page = c.get("/studio", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/studio"
    assert c.get(f"{API}/concepts").status_code == 401
    assert c.get(f"{API}/gallery").status_code == 401
    assert c.post(f"{API}/concepts", json={"name": "x", "items": [1]}).status_code == 401
    assert n_rows(store, Concept) == 0


def test_players_get_403(app, store, hand):
    c = client(app, store, "pat")
    assert c.get("/studio", headers={"Accept": "text/html"}).status_code == 403
    assert c.get("/studio/summary", headers={"Accept": "text/html"}).status_code == 403
    assert c.get(f"{API}/gallery").status_code == 403
    made = c.post(f"{API}/concepts", json={"name": "ears", "items": [it(hand, "a")]})
    assert made.status_code == 403 and "annotator" in made.json()["detail"]
    assert n_rows(store, Concept) == 0


def test_annotators_and_admins_get_the_pages(app, store):
    for who in ("ann", "boss"):
        page = client(app, store, who).get("/studio", headers={"Accept": "text/html"})
        assert page.status_code == 200 and 'src="/static/studio.js"' in page.text
        assert '<meta name="csrf-token" content="' in page.text
    assert client(app, store).get("/static/studio.js").status_code == 200
    assert client(app, store).get("/static/studio.css").status_code == 200


def test_state_changes_need_the_csrf_token(app, store, hand):
    c = client(app, store, "ann")
    made = c.post(f"{API}/concepts", json={"name": "ears", "items": [it(hand, "a"), it(hand, "b")]})
    assert made.status_code == 201
    cid = made.json()["id"]
    before = n_rows(store, ConceptEvent)
    good = c.headers.pop("X-CSRF-Token")
    for headers in ({}, {"X-CSRF-Token": "wrong"}):
        calls = [
            c.post(f"{API}/concepts", json={"name": "fur", "items": [it(hand, "c")]}, headers=headers),
            c.patch(f"{API}/concepts/{cid}", json={"name": "renamed"}, headers=headers),
            c.delete(f"{API}/concepts/{cid}", headers=headers),
            c.post(f"{API}/concepts/{cid}/items", json={"items": [it(hand, "c")]}, headers=headers),
            c.post(f"{API}/concepts/{cid}/items/drop", json={"items": [it(hand, "a")]}, headers=headers),
            c.post(f"{API}/concepts/{cid}/split", json={"items": [it(hand, "a")], "name": "x"}, headers=headers),
            c.post(f"{API}/concepts/merge", json={"concepts": [cid, cid]}, headers=headers),
        ]
        assert [r.status_code for r in calls] == [403] * 7
        assert "CSRF" in calls[0].json()["detail"]
    assert n_rows(store, Concept) == 1 and n_rows(store, ConceptEvent) == before
    with store.session() as s:
        concept = s.get(Concept, cid)
        assert concept.name == "ears" and not concept.removed
    assert n_rows(store, ConceptMember) == 2
    c.headers["X-CSRF-Token"] = good
    assert c.patch(f"{API}/concepts/{cid}", json={"name": "renamed"}).status_code == 200


def test_the_api_end_to_end(app, store, hand):
    c = client(app, store, "ann")
    a, b, cc, d2 = it(hand, "a"), it(hand, "b"), it(hand, "c"), it(hand, "d", "l2")
    filters = c.get(f"{API}/filters").json()
    assert [layer["name"] for layer in filters["layers"]] == ["l1", "l2"]
    page = c.get(f"{API}/gallery", params={"layer": "l1", "class": "cat", "per_page": 2}).json()
    assert (page["total"], page["pages"], [v["weight"] for v in page["items"]]) == (3, 2, [50.0, 40.0])

    ears = c.post(f"{API}/concepts", json={"name": " ears ", "items": [a, b]})
    assert ears.status_code == 201 and ears.json()["name"] == "ears" and ears.json()["size"] == 2
    eid = ears.json()["id"]
    taken = c.post(f"{API}/concepts", json={"name": "fur", "items": [b, cc]})
    assert taken.status_code == 409 and "move them explicitly" in taken.json()["detail"]
    fur = c.post(f"{API}/concepts", json={"name": "fur", "items": [b, cc], "move": True}).json()
    assert sorted(m["id"] for m in fur["members"]) == sorted([b, cc])
    assert c.get(f"{API}/concepts/{eid}").json()["size"] == 1

    assert c.patch(f"{API}/concepts/{eid}", json={"name": "pointy ears"}).json()["name"] == "pointy ears"
    assert c.post(f"{API}/concepts/{eid}/items", json={"items": [d2]}).json()["size"] == 2
    assert c.post(f"{API}/concepts/{eid}/items/drop", json={"items": [d2]}).json()["size"] == 1
    split = c.post(f"{API}/concepts/{fur['id']}/split", json={"items": [cc], "name": "dog ears"})
    assert split.status_code == 201 and [m["id"] for m in split.json()["members"]] == [cc]
    merged = c.post(f"{API}/concepts/merge", json={"concepts": [eid, fur["id"], split.json()["id"]], "name": "head"})
    assert merged.status_code == 200 and merged.json()["id"] == eid and merged.json()["size"] == 3
    assert [x["name"] for x in c.get(f"{API}/concepts").json()] == ["head"]
    history = [e["action"] for e in c.get(f"{API}/concepts/{eid}/history").json()]
    assert history == ["create", "drop", "rename", "add", "drop", "merge"]

    summary = c.get(f"{API}/summary").json()
    named = [(s["class_name"], [x["name"] for x in s["concepts"]]) for s in summary]
    assert named == [("cat", ["head"]), ("dog", ["head"])]
    explained = c.get(f"{API}/images/{hand['images']['a']}/explanation").json()
    assert [(x["name"], x["weight"]) for x in explained["concepts"]] == [("head", 40.0)]
    assert explained["unnamed_weight"] == 90.0

    assert c.delete(f"{API}/concepts/{eid}").json()["removed"] is True
    assert c.get(f"{API}/concepts").json() == []
    assert c.get(f"{API}/concepts/{eid}").status_code == 404


def test_errors_are_clear_and_store_nothing(app, store, hand):
    c = client(app, store, "ann")
    bad = c.post(f"{API}/concepts", json={"name": "<script>alert(1)</script>", "items": [it(hand, "a")]})
    assert bad.status_code == 400 and "letters, digits" in bad.json()["detail"]
    long = c.post(f"{API}/concepts", json={"name": "x" * 81, "items": [it(hand, "a")]})
    assert long.status_code == 400 and "81 characters" in long.json()["detail"]
    assert c.post(f"{API}/concepts", json={"name": "ok", "items": []}).status_code == 400
    assert c.post(f"{API}/concepts", json={"name": "ok", "items": [10 ** 9]}).status_code == 404
    assert c.post(f"{API}/concepts", json={"name": "ok", "items": "1,2"}).status_code == 422
    assert c.post(f"{API}/concepts", json={"items": [it(hand, "a")]}).status_code == 422
    assert c.post(f"{API}/concepts/merge", json={"concepts": [1]}).status_code == 400
    assert c.get(f"{API}/gallery", params={"per_page": 1000}).status_code == 422
    assert n_rows(store, Concept) == 0 and n_rows(store, ConceptEvent) == 0


def test_another_annotators_concept_is_not_found(app, store, hand):
    ann, bob = client(app, store, "ann"), client(app, store, "bob")
    cid = ann.post(f"{API}/concepts", json={"name": "ears", "items": [it(hand, "a")]}).json()["id"]
    assert bob.get(f"{API}/concepts/{cid}").status_code == 404
    assert bob.patch(f"{API}/concepts/{cid}", json={"name": "mine"}).status_code == 404
    assert bob.delete(f"{API}/concepts/{cid}").status_code == 404
    assert bob.post(f"{API}/concepts/{cid}/items", json={"items": [it(hand, "b")]}).status_code == 404
    assert bob.get(f"{API}/concepts").json() == []
    assert ann.get(f"{API}/concepts/{cid}").json()["name"] == "ears"
    # only admins see every annotator's summary
    assert ann.get(f"{API}/summary", params={"scope": "all"}).status_code == 403
    admin = client(app, store, "boss")
    bob.post(f"{API}/concepts", json={"name": "Ears", "items": [it(hand, "a"), it(hand, "b")]})
    everyone = admin.get(f"{API}/summary", params={"scope": "all"}).json()
    cat = everyone[0]["concepts"][0]
    assert (cat["images"], cat["annotators"]) == (2, ["ann", "bob"])
    assert admin.get(f"{API}/summary").json()[0]["concepts"] == []  # the admin's own: none yet


def test_user_text_is_escaped_in_pages(app, store, hand):
    with store.session() as s:
        image = s.get(StudyImage, hand["images"]["a"])
        image.key = '<img src=x onerror="alert(1)">.png'
        image.predicted_class = "<b>cat</b>"
    c = client(app, store, "ann")
    quoted = c.post(f"{API}/concepts", json={"name": "o'neil's \"ear\"", "items": [it(hand, "a")]})
    assert quoted.status_code == 400  # double quotes are not allowed in names
    made = c.post(f"{API}/concepts", json={"name": "o'neil's ear", "items": [it(hand, "a")]})
    assert made.status_code == 201
    with store.session() as s:
        assert s.get(Concept, made.json()["id"]).name == "o'neil's ear"  # stored as typed
    page = c.get("/studio/summary", headers={"Accept": "text/html"})
    assert page.status_code == 200
    text = page.text
    assert "o&#39;neil&#39;s ear" in text and "o'neil's ear" not in text
    assert "&lt;b&gt;cat&lt;/b&gt;" in text and "<b>cat</b>" not in text
    assert 'onerror="alert' not in text and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.png" in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    gallery = c.get(f"{API}/gallery", params={"image": hand["images"]["a"]}).json()
    assert gallery["items"][0]["image_key"] == '<img src=x onerror="alert(1)">.png'  # JSON carries it raw


def test_studio_over_a_built_study(store):
    study_id = make_tiny_study(store, 3)
    with store.session() as s:
        s.add(Account(username="ann", password_hash="x", role="annotator"))
    app = make_app(store)
    c = client(app, store, "ann")
    page = c.get(f"{API}/gallery", params={"per_page": 200}).json()
    assert page["total"] == 3 * 3 * 2  # images x layers x clusters
    assert [v["weight"] for v in page["items"]] == [60.0] * 9 + [30.0] * 9
    first = page["items"][0]
    for media in (first["map_media_id"], first["image_media_id"]):
        picture = c.get(f"/media/{media}.png")
        assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"
    made = c.post(f"{API}/concepts", json={"name": "blob", "items": [v["id"] for v in page["items"][:9]]})
    assert made.status_code == 201 and made.json()["weight"] == 540.0
    summary = c.get("/studio/summary", headers={"Accept": "text/html"})
    assert summary.status_code == 200 and summary.text.count('class="cname"') == 3
    assert [s["class_name"] for s in c.get(f"{API}/summary").json()] == ["cat", "dog", "fox"]
    with store.session() as s:
        assert s.scalar(select(Concept.study_id)) == study_id


def test_names_with_parentheses_and_common_punctuation(app, store, hand):
    c = client(app, store, "ann")
    made = c.post(f"{API}/concepts", json={"name": "wheel (front), rim/tyre", "items": [it(hand, "a")]})
    assert made.status_code == 201 and made.json()["name"] == "wheel (front), rim/tyre"
    renamed = c.patch(f"{API}/concepts/{made.json()['id']}", json={"name": "wheel: front & back!"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "wheel: front & back!"
    refused = c.post(f"{API}/concepts", json={"name": "<b>wheel</b>", "items": [it(hand, "b")]})
    assert refused.status_code == 400 and "'<'" in refused.json()["detail"]
