# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Schema versions: models and head agree, older databases upgrade with their data, unversioned
databases are recognised, and processes opening a new database at once do not collide."""

import contextlib
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from itertools import pairwise

import pytest
from dbs import store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import MetaData, create_engine, func, insert, inspect, pool, select, text

from netreveal.store import open_store
from netreveal.store.migrations import VERSION_TABLE
from netreveal.store.models import Account, Base, ConceptEvent, Embedding, Guess
from netreveal.store.schema import (
    current_revision,
    downgrade_schema,
    head_revision,
    make_revision,
    revision_number,
    schema_diffs,
    script_directory,
    upgrade_schema,
)

NOW = datetime(2025, 1, 20, 12, 0, tzinfo=timezone.utc)


def _revision(store) -> str | None:
    with store.engine.connect() as conn:
        return current_revision(conn)


@contextlib.contextmanager
def _opened_at_head(store_url):
    """The store at ``store_url`` opened (and so upgraded), checked to be at head with the models'
    schema; closed after the block."""
    opened = open_store(store_url)
    try:
        assert _revision(opened) == head_revision()
        with opened.engine.connect() as conn:
            assert schema_diffs(conn) == []
        yield opened
    finally:
        opened.close()


def _tables(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_models_match_head(store):
    """Fails when a model changes without a migration (see netreveal.store.migrations)."""
    assert _revision(store) == head_revision()
    with store.engine.connect() as conn:
        assert schema_diffs(conn) == []
    assert _tables(store) == set(Base.metadata.tables) | {VERSION_TABLE}


def test_history_is_linear_and_numbered():
    revisions = list(reversed(list(script_directory().walk_revisions())))
    assert [revision_number(r.revision) for r in revisions] == list(range(1, len(revisions) + 1))
    assert revisions[0].down_revision is None
    assert all(r.down_revision == p.revision for p, r in pairwise(revisions))


def test_autogenerate_finds_nothing_to_add(tmp_path):
    path = make_revision("nothing changed", directory=tmp_path)
    assert path.parent == tmp_path and path.name.startswith(f"{revision_number(head_revision()) + 1:04d}_")
    body = path.read_text()
    assert f"down_revision = '{head_revision()}'" in body
    code = [line.strip() for line in body.split("def upgrade() -> None:")[1].split("def downgrade")[0].splitlines()]
    assert [line for line in code if line and not line.startswith("#")] == ["pass"]


def _fill_0001(url: str) -> dict[str, int]:
    """Rows in every table of revision 0001, written through that revision's tables."""
    engine = create_engine(url, poolclass=pool.NullPool)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    assert "concept_events" not in t and "embeddings" not in t
    assert "source" not in t["guesses"].c and "background" not in t["accounts"].c
    with engine.begin() as conn:
        conn.execute(insert(t["accounts"]), [
            {"id": 1, "username": "ann", "password_hash": "h1", "role": "player", "created_at": NOW},
            {"id": 2, "username": "ben", "password_hash": "h2", "role": "annotator", "created_at": NOW},
        ])
        conn.execute(insert(t["studies"]), [{"id": 1, "name": "old", "kind": "reveal", "model": "{}",
                                             "classes": ["cat", "dog"], "layers": ["a", "b"],
                                             "params": {"seed": 3}, "created_at": NOW}])
        conn.execute(insert(t["media"]), [{"id": i, "study_id": 1, "png": bytes([i]) * 5} for i in range(1, 5)])
        conn.execute(insert(t["images"]), [{"id": 1, "study_id": 1, "key": "cat-1", "true_class": "cat",
                                            "predicted_class": "cat", "probability": 0.75, "media_id": 1}])
        conn.execute(insert(t["items"]), [{"id": 1, "study_id": 1, "image_id": 1, "layer": "b", "depth": 1,
                                           "cluster": 0, "weight": 55.5, "channels": [1, 4], "map_media_id": 2,
                                           "label_count": 2}])
        conn.execute(insert(t["reveal_frames"]), [{"item_id": 1, "step": s, "percent": p, "media_id": 3}
                                                  for s, p in ((1, 2.0), (2, 4.5))])
        conn.execute(insert(t["games"]), [{"id": 1, "player_id": 1, "item_id": 1, "step": 2, "outcome": "win",
                                           "points": 40, "started_at": NOW, "finished_at": NOW}])
        conn.execute(insert(t["guesses"]), [
            {"id": 1, "game_id": 1, "item_id": 1, "player_id": 1, "player_name": "ann", "step": 1,
             "guessed_class": "dog", "text": "fur", "correct": False, "created_at": NOW},
            {"id": 2, "game_id": 1, "item_id": 1, "player_id": 1, "player_name": "ann", "step": 2,
             "guessed_class": "cat", "text": "whiskers", "correct": True, "created_at": NOW},
        ])
        conn.execute(insert(t["concepts"]), [{"id": 1, "study_id": 1, "annotator_id": 2, "name": "whisker",
                                              "removed": False, "created_at": NOW, "updated_at": NOW}])
        conn.execute(insert(t["concept_members"]), [{"concept_id": 1, "item_id": 1, "annotator_id": 2}])
        conn.execute(insert(t["web_sessions"]), [{"token_hash": "f" * 64, "account_id": 1, "csrf_token": "c",
                                                  "created_at": NOW, "expires_at": NOW}])
        if engine.dialect.name == "postgresql":  # rows were given ids: move the id sequences past them
            for name, table in t.items():
                if "id" in table.c and name != VERSION_TABLE:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                      f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"))
        counts = {name: conn.execute(select(func.count()).select_from(table)).scalar() for name, table in t.items()
                  if name != VERSION_TABLE}
    engine.dispose()
    return counts


def _check_upgraded_data(store, counts: dict[str, int]) -> None:
    with store.engine.connect() as conn:
        for name, n in counts.items():
            assert conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar() == n, name
    with store.session() as s:
        guesses = s.scalars(select(Guess).order_by(Guess.id)).all()
        assert [(g.text, g.step, g.correct, g.guessed_class) for g in guesses] == [
            ("fur", 1, False, "dog"), ("whiskers", 2, True, "cat")]
        assert {(g.source, g.language, g.request_id) for g in guesses} == {("game", "en", None)}
        accounts = s.scalars(select(Account).order_by(Account.id)).all()
        assert [(a.username, a.password_hash, a.role, a.background) for a in accounts] == [
            ("ann", "h1", "player", None), ("ben", "h2", "annotator", None)]
        assert s.scalar(select(func.count()).select_from(ConceptEvent)) == 0
        assert s.scalar(select(func.count()).select_from(Embedding)) == 0
        # the new columns and tables work
        s.add(Guess(item_id=1, step=3, correct=True, text="nose", request_id="req-1", source="import", language="it"))
        s.add(ConceptEvent(concept_id=1, annotator_id=2, action="rename", detail={"from": "a", "to": "b"}))
        s.add(Embedding(model="m", text="nose", vector=b"\x00" * 8))
    with store.session() as s:
        assert s.scalars(select(Guess.language).where(Guess.request_id == "req-1")).one() == "it"


def test_upgrade_from_0001_keeps_data(store_url):
    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, "0001")
    assert _revision(old) == "0001"
    old.close()
    counts = _fill_0001(store_url)
    with _opened_at_head(store_url) as opened:
        _check_upgraded_data(opened, counts)


def test_downgrade_and_upgrade_again(store_url):
    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, "0001")
    old.close()
    counts = _fill_0001(store_url)
    opened = open_store(store_url)
    try:
        downgrade_schema(opened, "0001")
        assert _revision(opened) == "0001"
        assert "concept_events" not in _tables(opened)
        upgrade_schema(opened)
        assert _revision(opened) == head_revision()
        _check_upgraded_data(opened, counts)
    finally:
        opened.close()


def test_unversioned_database_made_by_create_all(store_url):
    engine = create_engine(store_url, poolclass=pool.NullPool)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Account.__table__).values(id=1, username="ann", password_hash="h", role="admin",
                                                      background="expert", created_at=NOW))
    engine.dispose()
    with _opened_at_head(store_url) as opened, opened.session() as s:
        assert s.scalars(select(Account.background)).one() == "expert"


def test_unversioned_database_of_the_first_schema(store_url):
    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, "0001")
    with old.engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{VERSION_TABLE}"'))
    old.close()
    counts = _fill_0001(store_url)
    with _opened_at_head(store_url) as opened:
        _check_upgraded_data(opened, counts)


def test_open_without_upgrade_leaves_database_alone(store_url):
    opened = open_store(store_url, upgrade=False)
    try:
        assert _revision(opened) is None
        assert not (_tables(opened) & set(Base.metadata.tables))
    finally:
        opened.close()


OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from netreveal.store import open_store
    url, folder, me = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    (folder / f"ready-{me}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)
    store = open_store(url)
    with store.session() as s:
        from netreveal.store.models import Account
        s.add(Account(username=f"user{me}", password_hash="x"))
    store.close()
    print("opened")
    """
)


def test_processes_opening_a_new_database_at_once(store_url, tmp_path):
    n = 3
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, store_url, str(tmp_path), str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    try:
        deadline = time.time() + 120
        while len(list(tmp_path.glob("ready-*"))) < n and time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == "opened"
    with _opened_at_head(store_url) as opened:
        with opened.engine.connect() as conn:
            assert conn.execute(text(f'SELECT COUNT(*) FROM "{VERSION_TABLE}"')).scalar() == 1
        with opened.session() as s:
            assert s.scalar(select(func.count()).select_from(Account)) == n


def test_unreachable_database_is_one_line_error():
    from netreveal.errors import NetrevealError

    with pytest.raises(NetrevealError, match="cannot open database") as info:
        open_store("postgresql://nobody@127.0.0.1:9/nothing")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("revision", ["0002", "0003", "0004", "0007"])
def test_unversioned_database_of_a_later_schema(store_url, revision):
    """A database at an intermediate schema whose version table was lost is recognised and upgraded."""
    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, revision)
    with old.engine.begin() as conn:
        conn.execute(insert(Account.__table__).values(id=1, username="ann", password_hash="h", role="admin",
                                                      background="novice", created_at=NOW))
        conn.execute(text(f'DROP TABLE "{VERSION_TABLE}"'))
    old.close()
    with _opened_at_head(store_url) as opened, opened.session() as s:
        assert s.scalars(select(Account.background)).one() == "novice"


def test_upgrade_from_0004_keeps_sessions_and_adds_invitations(store_url):
    """Logged-in browsers stay logged in across the upgrade (idle time counts from the session's
    creation); the invitations table works."""
    from netreveal.store.models import Invitation, WebSession

    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, "0004")
    old.close()
    engine = create_engine(store_url, poolclass=pool.NullPool)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    assert "invitations" not in t and "last_seen_at" not in t["web_sessions"].c
    with engine.begin() as conn:
        conn.execute(insert(t["accounts"]), [{"id": 1, "username": "ann", "password_hash": "h", "role": "admin",
                                              "created_at": NOW}])
        conn.execute(insert(t["web_sessions"]), [{"token_hash": "a" * 64, "account_id": 1, "csrf_token": "c",
                                                  "created_at": NOW, "expires_at": NOW}])
    engine.dispose()
    with _opened_at_head(store_url) as opened, opened.session() as s:
        row = s.scalars(select(WebSession)).one()
        assert (row.token_hash, row.account_id, row.last_seen_at) == ("a" * 64, 1, None)
        s.add(Invitation(token_hash="b" * 64, role="annotator", created_by=1, created_at=NOW, expires_at=NOW))
        s.flush()
        assert s.scalars(select(Invitation.role)).one() == "annotator"
    opened = open_store(store_url)
    try:
        downgrade_schema(opened, "0004")
        assert "invitations" not in _tables(opened)
        upgrade_schema(opened)
        assert _revision(opened) == head_revision()
    finally:
        opened.close()
