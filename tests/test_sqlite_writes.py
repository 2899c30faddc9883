"""One writer at a time per SQLite file within a process: writers queue on a lock, not in SQLite's busy wait."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import event, text

from netreveal.store.db import make_engine
from netreveal.store.sqlite_writes import QueuedWriterConnection, is_write, writer_lock


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection, _record):  # SQLite alone would give up on a held lock at once
        dbapi_connection.execute("PRAGMA busy_timeout=1")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    yield engine
    engine.dispose()


def test_write_statements_are_recognised():
    assert is_write("  insert into t values (1)") and is_write("UPDATE t SET v = 1") and is_write("delete from t")
    assert is_write("REPLACE INTO t VALUES (1)")
    assert not is_write("SELECT 1") and not is_write("PRAGMA busy_timeout=1") and not is_write("updated")


def test_a_second_writer_waits_for_the_first_instead_of_failing(engine, tmp_path):
    first_wrote, second_done, errors = threading.Event(), threading.Event(), []
    order = []

    def second():
        first_wrote.wait()
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (v) VALUES ('second')"))
            order.append("second committed")
        except Exception as error:  # noqa: BLE001 - recorded for the assertion below
            errors.append(error)
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('first')"))
        assert writer_lock(str((tmp_path / "w.db").resolve())).locked()
        first_wrote.set()
        assert not second_done.wait(0.3)  # queued behind the open transaction (SQLite alone: locked after 1 ms)
        order.append("first committing")
    thread.join(10)
    assert errors == []
    assert order == ["first committing", "second committed"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == ["first", "second"]


def test_the_lock_is_given_back_on_rollback_and_error(engine, tmp_path):
    lock = writer_lock(str((tmp_path / "w.db").resolve()))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        assert lock.locked()
        raise RuntimeError("boom")
    assert not lock.locked()
    with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - any database error will do
        conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'a')"))
        conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'b')"))  # primary key taken
    assert not lock.locked()
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()  # reads never take it
        assert not lock.locked()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
    assert not lock.locked()


def test_files_have_locks_of_their_own_and_memory_databases_none(tmp_path):
    assert writer_lock(str(tmp_path / "a.db")) is not writer_lock(str(tmp_path / "b.db"))
    assert writer_lock(str(tmp_path / "a.db")) is writer_lock(str(tmp_path / "a.db"))
    memory = make_engine("sqlite://")
    with memory.begin() as conn:
        conn.execute(text("CREATE TABLE t (v TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('x')"))
        dbapi = conn.connection.dbapi_connection
        assert isinstance(dbapi, QueuedWriterConnection) and dbapi.writer is None
    memory.dispose()


def test_a_writer_gives_up_after_the_lock_wait(tmp_path):
    from netreveal.store.db import Store

    store = Store(make_engine(f"sqlite:///{tmp_path / 'w.db'}"))
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v TEXT)"))
    store.lock_wait = 0.05
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('held')"))
        other = store.engine.connect()
        with pytest.raises(Exception, match="database is locked"):
            other.execute(text("INSERT INTO t VALUES ('late')"))
        other.close()
    store.engine.dispose()
    assert sqlite3.sqlite_version
