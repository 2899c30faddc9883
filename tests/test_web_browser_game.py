"""The reveal game in headless Chromium: sign up, play a round to a win, leaderboard, admin export and
counts, an invitation link that makes an annotator, phone width."""

import uuid
import zipfile

import pytest
from browser import SIZES, assert_fits, browser_page, needs_chromium
from sqlalchemy import select
from webstudy import LiveServer, build_template, copy_store

from netreveal.store import accounts
from netreveal.store import game as rules
from netreveal.store.models import Account, Guess, Item, Study
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "browser.db"
    return path, build_template(path)


@pytest.fixture
def served(tmp_path, template):
    store = copy_store(template[0], tmp_path / "browser.db")
    with store.session() as s:
        accounts.create_account(s, "chief", "summit-ledger-77", role="admin")
    app = create_app(store, rate_limit=RateLimit(guesses=1000, signups=1000, failed_logins=1000))
    with LiveServer(app) as url:
        yield url, store, template[1]
    store.close()


def sign_up(page, url, username):
    page.goto(f"{url}/signup")
    page.fill("#username", username)
    page.fill("#password", "a long password")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(f"{url}/play")


def log_in(page, url, username, password, lands_on="/play"):
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{url}{lands_on}")


def wait_step(page, step: int) -> None:
    """Wait until the page shows reveal step ``step`` (locator waits: the CSP forbids eval-based polling)."""
    page.locator("#step-label", has_text=f"Step {step} of").wait_for()


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_player_wins_a_round_after_two_reveal_steps_and_sees_the_leaderboard(served):
    url, store, ids = served
    errors = []
    with browser_page() as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        sign_up(page, url, "browser_bea")
        wait_step(page, 1)
        state = page.evaluate("api('POST', '/api/rounds')")  # the open round, as the page got it
        answer = ids["answer"][state["item_id"]]
        first_src = page.get_attribute("#frame-img", "src")
        assert first_src == f"/media/{ids['frames'][state['item_id']][0]}.png"
        page.wait_for_function("document.getElementById('frame-img').complete", timeout=30000)
        assert page.evaluate("document.getElementById('frame-img').naturalWidth") > 0  # the PNG loaded
        page.click("#more-btn")
        wait_step(page, 2)
        assert page.get_attribute("#frame-img", "src") == f"/media/{ids['frames'][state['item_id']][1]}.png"
        assert "4.5% of the picture" in page.text_content("#step-label")
        page.check(f"input[name=guessed_class][value={answer}]")
        page.fill("#text", "two pointy ears")
        page.click("#guess-btn")
        page.wait_for_selector("#result:not([hidden])")
        assert page.text_content("#result-text").startswith("You won 70 points at step 2")
        page.click("text=Leaderboard >> nth=-1")
        page.wait_for_url(f"{url}/leaderboard")
        row = page.text_content("#leaderboard tbody tr")
        assert "browser_bea" in row and "70" in row
    assert errors == []
    with store.session() as s:
        guesses = s.scalars(select(Guess)).all()
        assert [(g.text, g.step, g.correct, g.guessed_class) for g in guesses] == [("two pointy ears", 2, True, answer)]


def test_admin_downloads_the_export(served, tmp_path):
    url, _store, ids = served
    with browser_page() as page:
        sign_up(page, url, "labeller")
        wait_step(page, 1)
        page.check("input[name=guessed_class][value=fish]")
        page.fill("#text", "a shiny <scale>")
        page.click("#guess-btn")
        page.locator("#message:not(:empty), #result:not([hidden])").first.wait_for()
        page.click("button.link")  # log out
        page.wait_for_url(f"{url}/")
        log_in(page, url, "chief", "summit-ledger-77", lands_on="/admin")
        assert page.text_content("#unlabelled").strip() == str(len(ids["items"]) - 1)
        with page.expect_download() as download:
            page.click("#export")
        path = tmp_path / "export.zip"
        download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert {"tiny/study.json", "tiny/guesses.csv", "tiny/items.csv", "tiny/images.csv"} <= names
        guesses = archive.read("tiny/guesses.csv").decode()
        assert "a shiny <scale>" in guesses and "labeller" in guesses
        assert len(archive.read("tiny/items.csv").decode().strip().splitlines()) == len(ids["items"]) + 1


def _table(page, selector) -> list[list[str]]:
    return [[cell.strip() for cell in row.locator("td").all_text_contents()]
            for row in page.locator(f"{selector} tbody tr").all()]


def test_admin_page_shows_the_counts_and_invites_an_annotator(served):
    url, store, ids = served
    with store.session() as s:  # one label: a wrong guess at step 1 on the first item a player gets
        me = accounts.create_account(s, "labeller", "a long password")
        study = s.get(Study, ids["study"])
        game = rules.start_round(s, study, me)
        wrong = next(c for c in ("cat", "dog", "fish") if c != ids["answer"][game.item_id])
        rules.submit_guess(s, study, me, game.id, request_id=str(uuid.uuid4()), guessed_class=wrong, text="stripes")
        labelled_layer = s.get(Item, game.item_id).layer
    items = len(ids["items"])
    with browser_page() as page:
        log_in(page, url, "chief", "summit-ledger-77", lands_on="/admin")
        assert "built-in method" not in page.content()
        numbers = {k: page.text_content(f"#{k}").strip() for k in ("images", "items", "unlabelled", "labels")}
        assert numbers == {"images": "3", "items": str(items), "unlabelled": str(items - 1), "labels": "1"}
        assert _table(page, "#distribution") == [["0", str(items - 1)], ["1", "1"]]
        assert _table(page, "#layers") == [[layer, str(items // 2), "1" if layer == labelled_layer else "0"]
                                           for layer in ("block1", "block2")]
        # an invitation link, made on the page, makes an annotator
        page.select_option("#invite-role", "annotator")
        page.fill("#invite-days", "2")
        page.click("#invite-form button[type=submit]")
        link = page.locator("#invitation-link").input_value()
        assert link.startswith(f"{url}/invite/")
        page.click("button.link")  # log out
        page.wait_for_url(f"{url}/")
        page.goto(link)
        assert "invited as an annotator" in page.text_content("h1")
        page.fill("#username", "invited_ann")
        page.fill("#password", "a long password")
        page.click("#invite-form button[type=submit]")
        page.wait_for_url(f"{url}/studio")
        nav = page.text_content("header nav")
        assert "Studio" in nav and "Play" not in nav and "My stats" not in nav
    with store.session() as s:
        assert s.scalars(select(Account.role).where(Account.username == "invited_ann")).one() == "annotator"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_pages_fit_phone_and_laptop(served, size):
    url = served[0]
    width, height = size
    with browser_page(width, height) as page:
        for path in ("/", "/how-to-play", "/signup", "/login", "/leaderboard"):
            page.goto(url + path)
            assert overflow(page) <= 0, path
            assert_fits(page, f"{path} at {width}px")
        sign_up(page, url, f"phone_user_with_a_long_name_{width}")
        wait_step(page, 1)
        assert_fits(page, f"/play at {width}px")
        box = page.locator("#frame").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        for selector in ("#guess-btn", "#more-btn", "#resign-btn", "#text"):
            b = page.locator(selector).bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= width, selector
        page.click("#resign-btn")
        page.wait_for_selector("#result:not([hidden])")
        assert_fits(page, f"round result at {width}px")
        for path in ("/stats", "/leaderboard", "/account"):
            page.goto(url + path)
            assert_fits(page, f"{path} at {width}px")
        page.click("button.link")
        page.wait_for_url(f"{url}/")
        log_in(page, url, "chief", "summit-ledger-77", lands_on="/admin")
        assert_fits(page, f"/admin at {width}px")
