"""The database cannot serve: locked by another writer, read-only or full. The web app answers 503
with Retry-After within a few seconds, and no log or error message carries SQL parameters (a new
user's password hash). A large study is stored in batches, so a live game on the same database
keeps writing meanwhile and never sees the half-made study.
"""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import torch
from dbs import _blob, make_tiny_study, row_counts, store, store_url, write_lock  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from webstudy import Client, study_ids

from netreveal.errors import NetrevealError
from netreveal.store import Store, studies
from netreveal.store.building import STALE_AFTER
from netreveal.store.db import make_engine, unavailable_reason
from netreveal.store.models import Account, Item, Media, Study
from netreveal.studies.builder import ItemSpec, StudyBuilder
from netreveal.web.app import LOCK_WAIT, create_app, resolve_study
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)
QUICK = LOCK_WAIT + 4  # seconds within which a visitor must have an answer (argon2 hashing included)


def hashes_in(records) -> list[str]:
    return [r.getMessage() for r in records if "$argon2" in r.getMessage() or "$argon2" in (r.exc_text or "")]


def test_a_locked_database_is_503_with_retry_after_quickly(store_url, store, caplog):
    make_tiny_study(store)
    app = create_app(store, rate_limit=ROOMY)
    c = Client(app)
    caplog.set_level(logging.DEBUG)
    with write_lock(store_url):
        started = time.monotonic()
        r = c.signup("blocked_one", password="secret-password-1")
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0 and "busy" in r.json()["detail"]
        assert took < QUICK
        page = c.http.post("/signup", data={"username": "blocked_two", "password": "secret-password-2",
                                            "csrf_token": c.csrf}, headers={"accept": "text/html"})
        assert page.status_code == 503 and "retry-after" in page.headers
        assert "busy" in page.text and page.headers["content-type"].startswith("text/html")
    assert c.signup("blocked_one", password="secret-password-1").status_code == 201  # the lock is gone: it works
    assert any("503" in r.getMessage() for r in caplog.records)
    assert hashes_in(caplog.records) == []
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 1


def test_a_read_only_database_is_503(tmp_path):
    path = tmp_path / "ro.db"
    from netreveal.store import open_store

    writable = open_store(path)
    make_tiny_study(writable)
    writable.close()
    store = Store(make_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
    try:
        c = Client(create_app(store, rate_limit=ROOMY))
        started = time.monotonic()
        r = c.signup("reader", password="secret-password-3")
        assert r.status_code == 503 and "read-only" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 0 and time.monotonic() - started < QUICK
        assert c.get("/api/leaderboard").status_code == 200  # reading still works
    finally:
        store.close()


def test_only_errors_meaning_unavailable_are_503(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")

    @event.listens_for(engine, "connect")
    def small_disk(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA max_page_count=4")

    engine.dispose()
    with pytest.raises(OperationalError) as full, engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO blobs VALUES (zeroblob(200000))")
    assert unavailable_reason(full.value) == "full"
    with pytest.raises(OperationalError) as bug, engine.begin() as conn:
        conn.exec_driver_sql("SELECT * FROM no_such_table")
    assert unavailable_reason(bug.value) is None  # a bug stays a 500
    assert unavailable_reason(ValueError("x")) is None
    engine.dispose()


def test_errors_never_show_sql_parameters(store):
    with store.session() as s:
        s.add(Account(username="taken", password_hash="x"))
    with pytest.raises(IntegrityError) as caught, store.session() as s:
        s.add(Account(username="taken", password_hash="$argon2id$v=19$marker-of-the-hash"))
    assert "marker-of-the-hash" not in str(caught.value)


# ---- studies written in batches -----------------------------------------------------------------

def study_row(store, name):
    with store.session() as s:
        return s.scalars(select(Study).where(Study.name == name)).first()


def test_a_live_game_keeps_writing_while_a_large_study_is_created(store):
    ids = study_ids(store, make_tiny_study(store, name="live"))
    app = create_app(store, "live", rate_limit=ROOMY)
    c = Client(app)
    assert c.signup("player1").status_code == 201
    state = c.start()
    paused, resume, commits = threading.Event(), threading.Event(), []
    creator: dict = {}

    def after_commit(_session):
        if threading.get_ident() != creator.get("thread"):
            return
        commits.append(1)
        if len(commits) == 3:  # the study row and two batches are in: let the game play now
            paused.set()
            resume.wait(60)

    def create():
        creator["thread"] = threading.get_ident()
        return make_tiny_study(store, n_images=6, name="big", chunk=4)

    event.listen(Session, "after_commit", after_commit)
    pool = ThreadPoolExecutor(1)
    creation = pool.submit(create)
    try:
        while not paused.wait(0.1):
            assert not creation.done(), f"the study was stored in {len(commits)} transaction(s)"
        big = study_row(store, "big")
        assert big is not None and not big.ready
        with store.session() as s:
            assert s.scalar(select(func.count()).where(Item.study_id == big.id)) < 6 * 3 * 2
        started = time.monotonic()
        r = c.guess(state["game_id"], "fox" if ids["answer"][state["item_id"]] != "fox" else "cat")
        assert r.status_code == 200 and time.monotonic() - started < QUICK
        assert Client(app).signup("player2").status_code == 201
        assert resolve_study(store).name == "live"  # the newest complete study
        with pytest.raises(NetrevealError, match="not complete"):
            create_app(store, "big")
        with pytest.raises(NetrevealError, match="not complete"), store.session() as s:
            studies.get_study(s, "big")
        assert studies.study_exists(store, "big")
        assert {s["name"]: s["ready"] for s in studies.list_studies(store)} == {"live": True, "big": False}
        with pytest.raises(NetrevealError, match="already exists"):
            make_tiny_study(store, name="big")
    finally:
        resume.set()
        pool.shutdown(wait=True)
        event.remove(Session, "after_commit", after_commit)
    assert creation.result() == study_row(store, "big").id
    big = study_row(store, "big")
    assert big.ready
    with store.session() as s:
        assert s.scalar(select(func.count()).where(Item.study_id == big.id)) == 6 * 3 * 2
    assert create_app(store, "big").state.study_name == "big"


def test_a_failed_creation_removes_its_rows_and_nothing_else(store):
    make_tiny_study(store, name="keep")
    before = row_counts(store)
    gen = torch.Generator().manual_seed(1)
    with StudyBuilder("broken", model="m", classes=["a", "b"], layers=["l1"]) as builder:
        specs = []
        for i in range(5):
            picture = torch.rand(3, 16, 16, generator=gen)
            index = builder.add_image(f"img{i}", picture, "a", 0.9)
            low = _blob(8, gen)
            full = torch.nn.functional.interpolate(low[None, None], size=(16, 16), mode="bilinear")[0, 0]
            specs.append(ItemSpec(index, picture, "l1", 0, 10.0, [0], full, low))
        specs.append(ItemSpec(4, specs[4].picture, "l1", 0, 5.0, [1], specs[4].map, specs[4].low))  # a duplicate
        builder.add_items(specs)
        with pytest.raises(IntegrityError):
            builder.write(store, chunk=2)  # the duplicate is in the third batch of items
    assert row_counts(store) == before
    assert not studies.study_exists(store, "broken")


def test_an_abandoned_creation_is_replaced_and_a_running_one_is_not(store):
    with store.session() as s:
        for name, since in (("ghost", STALE_AFTER + timedelta(minutes=1)), ("running", timedelta(seconds=5))):
            row = Study(name=name, model="m", classes=["a"], layers=["l"], params={},
                        building_at=datetime.now(timezone.utc) - since)
            s.add(row)
            s.flush()
            s.add(Media(study_id=row.id, png=b"partial"))
    assert not studies.study_exists(store, "ghost") and studies.study_exists(store, "running")
    with pytest.raises(NetrevealError, match="already exists"):
        make_tiny_study(store, name="running")
    new_id = make_tiny_study(store, name="ghost")
    with store.session() as s:
        assert s.scalar(select(func.count()).where(Media.png == b"partial")) == 1  # the running one's only
        assert s.get(Study, new_id).ready
        assert s.scalar(select(func.count()).where(Study.name == "ghost")) == 1
