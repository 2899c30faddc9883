"""The label analysis of a demo-like study, crowd-labelled, in a real browser: the static report
and the explanation browser render, every picture loads, the bars are drawn, nothing breaks the
web app's Content-Security-Policy, and both fit a phone and a laptop."""

import pytest
from browser import SIZES, assert_fits, assert_not_squeezed, browser_page, needs_chromium
from sqlalchemy import select
from test_crowd_study import make_demo_study
from webstudy import LiveServer

from netreveal.data.crowd import CrowdConfig
from netreveal.labels.analysis import analyse_study
from netreveal.labels.crowd_study import label_study_with_crowd
from netreveal.labels.embed import Embedder
from netreveal.labels.report import write_label_report
from netreveal.store import accounts, open_store
from netreveal.store.models import Account, StudyImage
from netreveal.studies.embedding_cache import StoreEmbeddingCache
from netreveal.web.app import create_app
from netreveal.web.deps import SESSION_COOKIE

pytestmark = [needs_chromium, pytest.mark.browser]

IMAGES_STATE = "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo-like study labelled by the crowd at 20 % noise, its analysis (the default sentence
    embeddings) and the store."""
    folder = tmp_path_factory.mktemp("labels-browser")
    store = open_store(folder / "demo.db")
    make_demo_study(store)
    label_study_with_crowd(store, "demo", CrowdConfig.noisy(0.2, seed=0))
    embedder = Embedder(cache=StoreEmbeddingCache(store))
    analysis = analyse_study(store, "demo", model=embedder)
    yield store, analysis, embedder, folder
    store.close()


def _all_loaded(page) -> list:
    states = page.eval_on_selector_all("img", IMAGES_STATE)
    assert states
    assert all(done and width > 0 for _, done, width in states), [s for s in states if not (s[1] and s[2])]
    return states


def test_report_renders_with_every_picture_and_bar(demo):
    _, analysis, _, folder = demo
    index = write_label_report(analysis, folder / "report")
    n_bars = sum(len(g.labels) for g in analysis.explanations.global_explanations)
    with browser_page() as page:
        page.goto(index.as_uri())
        assert page.title() == "Labels of study demo"
        states = _all_loaded(page)
        # one picture per labelled map and per labelled image (at least)
        assert len(states) >= len(analysis.explanations.items) + len(analysis.explanations.local)
        assert n_bars > 0 and page.locator("svg.bars rect.bar").count() == n_bars
        widths = page.eval_on_selector_all("svg.bars rect.bar", "els => els.map(e => e.getBBox().width)")
        assert all(w >= 1 for w in widths)
        assert page.locator("section.card[id^=img-]").count() == len(analysis.explanations.local)
        assert "No annotators yet" in page.inner_text("main")
        page.screenshot(path=str(folder / "report.png"), full_page=True)


def test_explanation_browser_renders_under_the_content_security_policy(demo):
    store, analysis, embedder, folder = demo
    with store.session() as s:
        ann = Account(username="ann", password_hash="x", role="annotator")
        s.add(ann)
        s.flush()
        token, _ = accounts.start_session(s, ann)
        first = s.scalars(select(StudyImage.id).order_by(StudyImage.id)).first()
    app = create_app(store, "demo", rate_limit=None)
    app.state.label_embedding_model = embedder
    with LiveServer(app) as url, browser_page() as page:
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": url}])
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{url}/explanations")
        page.wait_for_load_state("networkidle")
        _all_loaded(page)
        n_bars = sum(len(g.labels) for g in analysis.explanations.global_explanations)
        assert page.locator("svg.bars rect.bar").count() == n_bars > 0
        page.click(f'a.image-link[href="/explanations/images/{first}"]')
        page.wait_for_load_state("networkidle")
        _all_loaded(page)
        maps = page.locator(".xthumb img.map")
        assert maps.count() > 0
        # the map is drawn over its image by the stylesheet (no inline style is allowed)
        assert maps.first.evaluate("e => getComputedStyle(e).mixBlendMode") == "multiply"
        assert page.locator("ol.labels li.best").count() > 0
        page.screenshot(path=str(folder / "browser.png"), full_page=True)
        assert not problems, problems


def _session_token(store, username: str, role: str) -> str:
    with store.session() as s:
        account = s.scalar(select(Account).where(Account.username == username))
        if account is None:
            account = Account(username=username, password_hash="x", role=role)
            s.add(account)
            s.flush()
        token, _ = accounts.start_session(s, account)
    return token


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_report_and_explanation_pages_fit_phone_and_laptop(demo, size):
    store, analysis, embedder, folder = demo
    width, height = size
    index = write_label_report(analysis, folder / f"report-{width}")
    token = _session_token(store, "fitter", "annotator")
    with store.session() as s:
        first = s.scalars(select(StudyImage.id).order_by(StudyImage.id)).first()
    app = create_app(store, "demo", rate_limit=None)
    app.state.label_embedding_model = embedder
    with LiveServer(app) as url, browser_page(width, height) as page:
        page.goto(index.as_uri())
        for opened in page.locator("details").all():  # the tables folded under each class too
            opened.evaluate("d => d.open = true")
        assert_fits(page, f"label report at {width}px")
        assert_not_squeezed(page, f"label report at {width}px")
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": url}])
        for path in ("/explanations", f"/explanations/images/{first}"):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            assert_fits(page, f"{path} at {width}px")
            assert_not_squeezed(page, f"{path} at {width}px")
        titles = page.eval_on_selector_all(".xthumb", "els => els.map(e => e.title)")
        assert titles and all(t.startswith("cluster ") and not t.startswith("cluster 0") for t in titles)


def _merge_entries(analysis, size: int = 4):
    """A copy of ``analysis`` whose first ``size`` cluster maps of every image and layer are one merged
    entry (as when they share a best label): the longest captions and widest map rows a report draws."""
    import copy

    from netreveal.labels.aggregate import LocalEntry

    merged = copy.deepcopy(analysis)
    count = 0
    for expl in merged.explanations.local:
        for layer in expl.layers:
            head, rest = layer.entries[:size], layer.entries[size:]
            if len(head) < 2:
                continue
            layer.entries = [LocalEntry(clusters=[c for e in head for c in e.clusters],
                                        item_ids=[i for e in head for i in e.item_ids],
                                        weight=sum(e.weight for e in head), labels=head[0].labels), *rest]
            count += 1
    assert count, "no image layer has two entries to merge"
    return merged


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_merged_cluster_groups_fit_phone_and_laptop(demo, size):
    _, analysis, _, folder = demo
    width, height = size
    index = write_label_report(_merge_entries(analysis), folder / f"merged-{width}")
    with browser_page(width, height) as page:
        page.goto(index.as_uri())
        assert page.get_by_text("merged", exact=False).count() > 0
        assert_fits(page, f"label report with merged groups at {width}px")
