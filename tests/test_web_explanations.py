"""The explanation browser over HTTP: who may see it, what the pages show (escaped), the cache."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures)
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_label_report import PLANE, HashModel, add_labels, item_ids

from netreveal.labels import analysis as analysis_module
from netreveal.store import accounts
from netreveal.store.models import Account, Guess, Item, StudyImage
from netreveal.web.app import create_app
from netreveal.web.deps import SESSION_COOKIE

CLASSES = ("cart", "<i>plane</i>", "fox")
HTML = {"Accept": "text/html"}


@pytest.fixture
def hand(store):
    make_tiny_study(store, name="other", classes=("cat", "dog"))
    make_tiny_study(store, name="hand", classes=CLASSES)
    add_labels(store)
    with store.session() as s:
        s.add_all([Account(username=name, password_hash="x", role=role)
                   for name, role in (("pat", "player"), ("ann", "annotator"), ("root", "admin"))])
    return store


@pytest.fixture
def app(hand):
    app = create_app(hand, "hand", rate_limit=None)
    app.state.label_embedding_model = HashModel()
    return app


def client(app, store, username=None) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    if username:
        with store.session() as s:
            account = s.scalar(select(Account).where(Account.username == username))
            token, _ = accounts.start_session(s, account)
        c.cookies.set(SESSION_COOKIE, token)
    return c


def images(store, study_name="hand") -> dict[str, int]:
    from netreveal.store.models import Study

    with store.session() as s:
        return dict(s.execute(select(StudyImage.key, StudyImage.id).join(Study, Study.id == StudyImage.study_id)
                              .where(Study.name == study_name)).all())


def test_logged_out_visitors_log_in_and_players_are_refused(app, hand):
    ids = images(hand)
    c = client(app, hand)
    page = c.get("/explanations", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/explanations"
    page = c.get(f"/explanations/images/{ids['cart-000']}", headers=HTML)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/explanations/images/")
    assert c.get("/explanations").status_code == 401
    player = client(app, hand, "pat")
    assert player.get("/explanations", headers=HTML).status_code == 403
    assert player.get(f"/explanations/images/{ids['cart-000']}", headers=HTML).status_code == 403
    assert 'href="/explanations"' not in player.get("/leaderboard", headers=HTML).text


@pytest.mark.parametrize("who", ["ann", "root"])
def test_global_page_shows_the_labels_escaped(app, hand, who):
    page = client(app, hand, who).get("/explanations", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "<i>plane</i>" not in text and "&lt;i&gt;plane&lt;/i&gt;" in text
    assert 'href="/explanations"' in text  # the navigation link
    # per class and layer the bars of the top labels, with their scores (hand-computed)
    assert text.count('class="bar"') == 6
    for word, score in (("wheel", "1.88"), ("star", "0.90"), ("wing", "2.20"), ("zigzag", "0.12")):
        assert f">{word}</text>" in text and f">{score}" in text
    assert "+1.10" in text  # cart: wing rises with depth
    for image_id in images(hand).values():
        assert f'href="/explanations/images/{image_id}"' in text
    assert "10 labels on 18 cluster maps of 3 images" in " ".join(text.split())


def test_image_page_shows_maps_with_best_labels(app, hand):
    ids = images(hand)
    c = client(app, hand, "ann")
    page = c.get(f"/explanations/images/{ids['cart-000']}", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "clusters 1 + 2 merged · 90.0%" in text  # block3: both maps named wing
    assert '<span class="word">wing</span> <span class="muted">2.20</span>' in text
    assert '<span class="word">wheel</span> <span class="muted">1.88</span>' in text
    with hand.session() as s:
        maps = s.scalars(select(Item.map_media_id).where(Item.image_id == ids["cart-000"])).all()
    assert len(maps) == 6 and all(f'src="/media/{m}.png"' in text for m in maps)
    assert text.count("no labels yet") == 2  # block2's two maps
    assert f'href="/explanations/images/{ids[PLANE]}" rel="next"' in text
    plane = c.get(f"/explanations/images/{ids[PLANE]}", headers=HTML).text
    assert "<i>plane</i>" not in plane and "&lt;i&gt;plane&lt;/i&gt;-001" in plane
    other = images(hand, "other")
    assert c.get(f"/explanations/images/{next(iter(other.values()))}", headers=HTML).status_code == 404
    assert c.get("/explanations/images/99999", headers=HTML).status_code == 404


def test_analysis_is_cached_until_a_label_arrives(app, hand, monkeypatch):
    calls = []
    real = analysis_module.analyse_study

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis_module, "analyse_study", counting)
    c = client(app, hand, "ann")
    ids = images(hand)
    assert c.get("/explanations", headers=HTML).status_code == 200
    assert c.get(f"/explanations/images/{ids['cart-000']}", headers=HTML).status_code == 200
    assert c.get("/explanations", headers=HTML).status_code == 200
    assert len(calls) == 1 and calls[0]["pictures"] is False
    item = item_ids(hand)[("fox-002", "block1", 0)]
    with hand.session() as s:
        s.add(Guess(item_id=item, player_name="zed", step=1, text="crescent", correct=True, source="game"))
    page = c.get("/explanations", headers=HTML).text
    assert len(calls) == 2 and ">crescent</text>" in page and ">fox</h2>" in page
    c.get("/explanations", headers=HTML)
    assert len(calls) == 2


def test_a_study_without_labels_says_so(store):
    make_tiny_study(store, name="fresh")
    with store.session() as s:
        s.add(Account(username="ann", password_hash="x", role="annotator"))
    app = create_app(store, "fresh", rate_limit=None)
    app.state.label_embedding_model = HashModel()
    c = client(app, store, "ann")
    for path in ("/explanations", f"/explanations/images/{next(iter(images(store, 'fresh').values()))}"):
        page = c.get(path, headers=HTML)
        assert page.status_code == 200 and "has no labels yet" in page.text


def test_warm_up_prepares_the_pages_before_the_first_visit(app, hand, monkeypatch):
    from netreveal.web.explanations import warm_up

    calls = []
    real = analysis_module.analyse_study

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis_module, "analyse_study", counting)
    warm_up(app).join(timeout=60)
    assert len(calls) == 1 and calls[0]["memo"] is not None
    page = client(app, hand, "ann").get("/explanations", headers=HTML)
    assert page.status_code == 200 and "wheel" in page.text
    assert len(calls) == 1  # the first visit found the analysis ready


def test_no_warm_up_without_labels_or_for_an_evaluation_study(store):
    from evalstudy import make_eval_study

    from netreveal.web.explanations import warm_up

    make_tiny_study(store, name="unlabelled", classes=CLASSES)
    assert warm_up(create_app(store, "unlabelled", rate_limit=None)) is None
    make_eval_study(store)
    assert warm_up(create_app(store, "ev", rate_limit=None)) is None
