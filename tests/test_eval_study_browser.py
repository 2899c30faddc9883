"""An evaluation study in headless Chromium: a participant consents, answers three questions,
leaves, comes back to the fourth, finishes and gets the thank-you page."""

import pytest
from browser import SIZES, assert_fits, assert_not_squeezed, browser_page, needs_chromium
from evalstudy import make_eval_study
from sqlalchemy import select
from webstudy import LiveServer

from netreveal.store import accounts, open_store
from netreveal.store.models import EvalParticipant
from netreveal.userstudy.records import SCALES
from netreveal.web.app import create_app

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def served(tmp_path):
    store = open_store(tmp_path / "eval-browser.db")
    made = make_eval_study(store)
    with store.session() as s:
        accounts.create_account(s, "rater", "a long password")
    with LiveServer(create_app(store, rate_limit=None)) as url:
        yield url, store, made
    store.close()


def log_in(page, url):
    page.goto(f"{url}/login?next=/study")
    page.fill("#username", "rater")
    page.fill("#password", "a long password")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{url}/study")


def wait_question(page, number: int, previous: str | None = None) -> tuple[str, str]:
    """Wait until question ``number`` (not ``previous``) is on screen: (kind, question id)."""
    page.locator("#progress-text", has_text=f"Question {number} of").wait_for()
    not_previous = f":not([data-question='{previous}'])" if previous else ""
    page.locator(f"#question-form[data-question]{not_previous}").wait_for()
    return page.get_attribute("#question-form", "data-kind"), page.get_attribute("#question-form", "data-question")


def answer(page, kind: str) -> None:
    if kind == "rating":
        assert page.locator(".panel").count() == 4
        for img in page.locator(".panel img").all():  # every explanation picture loaded
            img.wait_for()
            handle = img.element_handle()
            page.wait_for_function("(el) => el.complete", arg=handle, timeout=30000)  # loading is asynchronous
            assert page.evaluate("(el) => el.complete && el.naturalWidth > 0", handle)
        for letter in "ABCD":
            for value, scale in zip(("4", "2"), SCALES):
                page.check(f"input[name='rate-{letter}-{scale}'][value='{value}']")
    elif kind == "comment":
        page.fill("#comment", "The heatmaps were clear.")
    else:
        page.locator("input[name=choice]").first.check()
    page.click("#next-btn")


def test_participant_answers_three_leaves_comes_back_and_finishes(served):
    url, store, made = served
    errors = []
    with browser_page() as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        log_in(page, url)
        assert page.locator("#consent-form").is_visible()
        page.check("input[name=background][value=expert]")
        page.check("#consent")
        page.click("#start-btn")
        page.wait_for_url(f"{url}/study")
        total = len(made["design"])
        previous = None
        for number in (1, 2, 3):
            kind, previous = wait_question(page, number, previous)
            if number == 1:  # ratings are checked before anything is sent
                page.click("#next-btn")
                page.locator("#message", has_text="Please rate explanation").wait_for()
            answer(page, kind)
        _, fourth = wait_question(page, 4, previous)
        with store.session() as s:
            (participant,) = s.scalars(select(EvalParticipant)).all()
            assert participant.background == "expert"
            assert [q["id"] for q in participant.assignment[:4]][-1] == fourth
        # leave: a fresh browser state, then log in again
        page.context.clear_cookies()
        page.goto(f"{url}/study")
        assert page.locator("a[href='/login?next=/study']").is_visible()
        log_in(page, url)
        assert wait_question(page, 4)[1] == fourth
        assert page.text_content("#progress-text").strip() == f"Question 4 of {total}"
        previous = None
        for number in range(4, total + 1):
            kind, previous = wait_question(page, number, previous)
            answer(page, kind)
        page.locator("#thanks").wait_for()
        assert f"You answered all {total} questions" in page.text_content("#thanks")
    assert errors == []
    with store.session() as s:
        (participant,) = s.scalars(select(EvalParticipant)).all()
        assert participant.finished_at is not None
    from netreveal.store.evaluation import study_data

    data = study_data(store, "ev")
    asked = list(dict.fromkeys(r.question for r in data.responses))
    assert asked == [q["id"] for q in participant.assignment]  # every question once, in the assigned order
    ratings = [r for r in data.responses if r.kind == "rating"]
    assert {(r.scale, r.value) for r in ratings} == {("informativeness", 4), ("understandability", 2)}
    assert len(ratings) == 4 * 2 * sum(q.kind == "rating" for q in made["design"])
    assert [r.text for r in data.responses if r.kind == "comment"] == ["The heatmaps were clear."]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}px")
def test_analysis_report_and_participant_pages_fit_phone_and_laptop(served, size, tmp_path):
    from test_userstudy_analysis import ALPHA, BACKGROUND, BETA, GAMMA, _responses

    from netreveal.userstudy import analyse, write_analysis_report
    from netreveal.userstudy.records import Participant

    people = [Participant(pid, background) for pid, background in BACKGROUND.items()]
    report = write_analysis_report(analyse(_responses(), people, methods=[ALPHA, BETA, GAMMA]), tmp_path / "a")
    url = served[0]
    width, height = size
    with browser_page(width, height) as page:
        page.goto(report.as_uri())
        assert_fits(page, f"evaluation analysis at {width}px")
        assert_not_squeezed(page, f"evaluation analysis at {width}px")
        for path in ("/signup", "/login"):
            page.goto(url + path)
            assert_fits(page, f"{path} at {width}px")
        log_in(page, url)
        assert_fits(page, f"consent page at {width}px")
        page.check("input[name=background][value=novice]")
        page.check("#consent")
        page.click("#start-btn")
        kind, _ = wait_question(page, 1)
        assert_fits(page, f"question 1 ({kind}) at {width}px")
        nav = page.inner_text("nav")
        assert "Studio" not in nav and "Explanations" not in nav and "Play" not in nav
