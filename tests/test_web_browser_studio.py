"""The naming studio in headless Chromium: group maps, rename, merge; the database afterwards."""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import socket
import threading
import time
from contextlib import contextmanager

import pytest
from browser import SIZES, assert_fits, assert_not_squeezed, browser_page, needs_chromium
from dbs import store, store_url  # noqa: F401  (fixtures)
from playwright.sync_api import expect
from sqlalchemy import select, update
from test_concepts_store import build_study, it
from test_web_studio import make_app

from netreveal.store import accounts
from netreveal.store import concepts as C
from netreveal.store.models import Account, Concept, ConceptEvent, ConceptMember, Item, StudyImage
from netreveal.web.deps import SESSION_COOKIE

pytestmark = [needs_chromium, pytest.mark.browser]
HOSTILE_KEY = '<img src=x onerror="document.title=1">'


@contextmanager
def serve(app):
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def session_cookie(store, base, username):
    with store.session() as s:
        account = s.scalar(select(Account).where(Account.username == username))
        token, _ = accounts.start_session(s, account)
    return {"name": SESSION_COOKIE, "value": token, "url": base}


def live_concepts(store, annotator_id):
    with store.session() as s:
        rows = s.scalars(select(Concept).where(Concept.annotator_id == annotator_id).order_by(Concept.id)).all()
        return [(c.id, c.name, c.removed, sorted(s.scalars(select(ConceptMember.item_id)
                                                           .where(ConceptMember.concept_id == c.id))))
                for c in rows]


def wait_ready(page):
    page.wait_for_selector("#studio[data-ready=yes]")
    page.wait_for_selector("#gallery[aria-busy=false]")


def test_group_rename_merge_in_chromium(store, tmp_path):
    hand = build_study(store)
    with store.session() as s:
        s.get(StudyImage, hand["images"]["b"]).key = HOSTILE_KEY
    app = make_app(store)
    with serve(app) as base, browser_page() as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.context.add_cookies([session_cookie(store, base, "ann")])
        page.goto(base + "/studio")
        wait_ready(page)
        assert page.locator("#gallery .map-card").count() == 9
        assert page.locator("#no-concepts").is_visible()

        # the maps of layer l1, strongest first: c (70), b (50), a (40), a/cluster 1 (30)
        page.select_option("#f-layer", "l1")
        expect(page.locator("#gallery .map-card")).to_have_count(4)
        wait_ready(page)
        assert "layer=l1" in page.url
        cards = page.locator("#gallery .map-card .pick")
        cards.nth(0).click()
        cards.nth(2).click(modifiers=["Shift"])  # a range: the three strongest
        assert page.inner_text("#sel-count") == "3 selected"
        assert page.locator("#gallery .map-card.selected").count() == 3
        page.fill("#new-name", "ears")
        page.click("#btn-group")
        page.wait_for_selector("#concepts .concept .concept-name >> text=ears")
        l1_top3 = sorted([it(hand, "a"), it(hand, "b"), it(hand, "c")])
        [(ears_id, name, removed, members)] = live_concepts(store, hand["ann"])
        assert (name, removed, members) == ("ears", False, l1_top3)
        assert page.inner_text("#sel-count") == "0 selected"
        assert page.locator("#gallery .tag:not(.free)").all_inner_texts() == ["ears"] * 3

        # the hostile image key is shown as text, never as markup
        keys = page.locator("#gallery .image-link").all_inner_texts()
        assert HOSTILE_KEY in keys and page.locator('img[src="x"]').count() == 0

        # rename inline
        page.click(f"#concepts .concept[data-id='{ears_id}'] .concept-name")
        page.fill(f"#concepts .concept[data-id='{ears_id}'] input.rename", "pointy ears")
        page.press(f"#concepts .concept[data-id='{ears_id}'] input.rename", "Enter")
        page.wait_for_selector("#concepts .concept-name >> text=pointy ears")
        assert live_concepts(store, hand["ann"])[0][1] == "pointy ears"

        # a second concept from layer l2, then merge the two
        page.select_option("#f-layer", "l2")
        expect(page.locator("#gallery .map-card")).to_have_count(5)
        wait_ready(page)
        page.locator("#gallery .map-card .pick").nth(0).click()
        page.locator("#gallery .map-card .pick").nth(1).click()
        page.fill("#new-name", "fur")
        page.press("#new-name", "Enter")
        page.wait_for_selector("#concepts .concept-name >> text=fur")
        assert page.locator("#concepts .concept").count() == 2
        fur_id = next(cid for cid, name, _, _ in live_concepts(store, hand["ann"]) if name == "fur")

        page.check(f"#concepts .concept[data-id='{ears_id}'] .merge-pick")
        page.check(f"#concepts .concept[data-id='{fur_id}'] .merge-pick")
        assert page.inner_text("#btn-merge") == "Merge 2 ticked"
        page.fill("#merge-name", "head")
        page.click("#btn-merge")
        expect(page.locator("#concepts .concept")).to_have_count(1)
        page.wait_for_selector("#concepts .concept-name >> text=head")
        page.screenshot(path=str(tmp_path / "studio-laptop.png"), full_page=True)

        l2_top2 = [it(hand, "a", "l2"), it(hand, "c", "l2")]
        state = live_concepts(store, hand["ann"])
        assert state == [(ears_id, "head", False, sorted(l1_top3 + l2_top2)), (fur_id, "fur", True, [])]
        with store.session() as s:
            actions = s.scalars(select(ConceptEvent.action).where(ConceptEvent.concept_id == ears_id)
                                .order_by(ConceptEvent.id)).all()
        assert actions == ["create", "rename", "merge"]

        # the summary page lists the merged concept for both classes
        page.click("text=Concepts per class")
        page.wait_for_selector(".class-summary")
        assert page.locator(".class-summary h2").all_inner_texts() == ["cat", "dog"]
        assert page.locator(".class-summary .cname").all_inner_texts() == ["head", "head"]
        page.wait_for_function("() => [...document.querySelectorAll('.examples img')].every(e => e.complete)",
                               timeout=30000)
        loaded = page.eval_on_selector_all(".examples img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        assert loaded and all(loaded)
        assert errors == []


LONG_LAYER = "features.block4.conv3_with_a_rather_long_name"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_studio_fits_phone_and_laptop(store, tmp_path, size):
    hand = build_study(store)
    with store.session() as s:  # a long layer name, as real networks have
        renamed = s.execute(update(Item).where(Item.layer == "l2").values(layer=LONG_LAYER)).rowcount
    C.create_concept(store, hand["study"], hand["ann"], "wheel (front), rim/tyre", [it(hand, "a")])
    app = make_app(store)
    width, height = size
    with serve(app) as base, browser_page(width, height) as page:
        page.context.add_cookies([session_cookie(store, base, "ann")])
        page.goto(base + "/studio")
        wait_ready(page)
        assert_fits(page, f"studio at {width}px")
        widths = page.eval_on_selector_all("#gallery .map-card", "els => els.map(e => e.getBoundingClientRect().width)")
        assert len(widths) == 9 and min(widths) >= 90  # thumbnails stay big enough to tap
        # captions wrap (never clipped) and carry the whole layer name as their title
        captions = page.eval_on_selector_all(
            "#gallery .cap .meta", "els => els.map(e => [e.title, e.scrollWidth <= e.clientWidth + 1])")
        assert all(fits for _, fits in captions)
        assert sum(title.endswith(LONG_LAYER) for title, _ in captions) == renamed > 0
        assert page.locator("#concepts .concept-name", has_text="wheel (front), rim/tyre").count() == 1
        # images load asynchronously: wait (bounded) until the first four have decoded, then check
        page.wait_for_function(
            "() => [...document.querySelectorAll('#gallery img')].slice(0, 4).every(e => e.complete)",
            timeout=30000)
        loaded = page.eval_on_selector_all(
            "#gallery img", "els => els.slice(0, 4).map(e => e.complete && e.naturalWidth > 0)")
        assert all(loaded)
        page.screenshot(path=str(tmp_path / f"studio-{width}.png"), full_page=True)
        page.goto(base + "/studio/summary")
        assert_fits(page, f"studio summary at {width}px")
        assert_not_squeezed(page, f"studio summary at {width}px")


def test_split_drop_move_and_remove_in_chromium(store):
    if store.engine.url.get_backend_name() != "sqlite":
        pytest.skip("the page logic is the same on every backend; the group/rename/merge test covers both")
    hand = build_study(store)
    a, b, c = it(hand, "a"), it(hand, "b"), it(hand, "c")
    ears = C.create_concept(store, hand["study"], hand["ann"], "ears", [a, b, c])
    app = make_app(store)
    with serve(app) as base, browser_page() as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        dialogs = []

        def answer(dialog):
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", answer)
        page.context.add_cookies([session_cookie(store, base, "ann")])
        page.goto(base + "/studio?layer=l1")
        wait_ready(page)
        entry = f"#concepts .concept[data-id='{ears.id}']"
        page.click(f"{entry} .toggle")
        members = page.locator(f"{entry} .members .pick")
        expect(members).to_have_count(3)
        members.nth(0).click()  # c (70) is the strongest
        page.fill(f"{entry} .split-name", "big ears")
        page.click(f"{entry} .split")
        page.wait_for_selector("#concepts .concept-name >> text=big ears")
        state = {name: items for _, name, removed, items in live_concepts(store, hand["ann"]) if not removed}
        assert state == {"ears": sorted([a, b]), "big ears": [c]}

        # drop b from ears
        page.locator(f"{entry} .members .pick").nth(0).click()  # b (50)
        page.click(f"{entry} .drop")
        expect(page.locator("#status")).to_contain_text("Dropped 1 map")
        expect(page.locator(f"{entry} .members .pick")).to_have_count(1)
        state = {name: items for _, name, removed, items in live_concepts(store, hand["ann"]) if not removed}
        assert state == {"ears": [a], "big ears": [c]}

        # add a (in ears) and b (free) to big ears: the page asks before moving a
        big = next(cid for cid, name, _, _ in live_concepts(store, hand["ann"]) if name == "big ears")
        cards = page.locator("#gallery .map-card .pick")
        cards.nth(1).click()  # b
        cards.nth(2).click()  # a
        page.select_option("#add-target", str(big))
        page.click("#btn-add")
        expect(page.locator("#status")).to_contain_text("now holds 3 maps")
        assert len(dialogs) == 1 and "ears" in dialogs[0]
        state = {name: items for _, name, removed, items in live_concepts(store, hand["ann"]) if not removed}
        assert state == {"ears": [], "big ears": sorted([a, b, c])}

        # remove the emptied concept after confirming
        page.click(f"{entry} .remove")
        expect(page.locator("#concepts .concept")).to_have_count(1)
        assert len(dialogs) == 2 and "Remove the concept" in dialogs[1]
        assert [(n, r) for _, n, r, _ in live_concepts(store, hand["ann"])] == [("ears", True), ("big ears", False)]
        assert errors == []
