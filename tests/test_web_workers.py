# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""``netreveal serve --workers N``: several server processes on one port, each answering, all
sharing the limits kept in the database; the serve checks hold as with one process."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_checks import fails_with_one_line
from dbs import store_url  # noqa: F401  (fixture: a fresh SQLite or PostgreSQL database)
from webstudy import Served, make_web_study

from netreveal.errors import NetrevealError
from netreveal.store import open_store
from netreveal.web.serving import SETTINGS_ENV, ServeSettings, app_from_environment


def spawned_workers(parent: int) -> list[int]:
    """The worker processes uvicorn spawned for the server process ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def waits_for_requests(pid: int) -> bool:
    """True when the main thread of ``pid`` sleeps in its event loop's epoll: the worker has built
    its app and serves (idle)."""
    try:
        return "epoll" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def ready_workers(parent: int, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = spawned_workers(parent)
        if len(workers) == count and all(waits_for_requests(pid) for pid in workers):
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not start (found {spawned_workers(parent)})")


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """``pid`` stopped (SIGSTOP) during the block, so it accepts no connection; continued after.
    Keep the block short: uvicorn replaces a worker that does not answer its health check in 5 s."""
    os.kill(pid, signal.SIGSTOP)
    try:
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            time.sleep(0.01)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def study_url(store_url):
    opened = open_store(store_url)
    try:
        make_web_study(opened)
    finally:
        opened.close()
    return store_url


def test_two_workers_each_answer_and_share_the_failed_login_limit(study_url):
    """With either worker stopped the other answers; the 10 wrong passwords a minute allowed to one
    address are counted over both (5 + 5, then 429)."""
    with Served(study_url, "--workers", "2") as served:
        first, second = ready_workers(served.proc.pid, 2)
        with paused(first):  # only the second can accept connections
            answers = [served.login(f"nobody{i}", "wrong-password") for i in range(5)]
        assert spawned_workers(served.proc.pid) == [first, second]  # nobody was replaced meanwhile
        with paused(second):
            answers += [served.login(f"nobody{i}", "wrong-password") for i in range(5, 11)]
        assert spawned_workers(served.proc.pid) == [first, second]
        assert [r.status_code for r in answers] == [401] * 10 + [429]
        assert "wait" in answers[-1].json()["detail"] and int(answers[-1].headers["retry-after"]) >= 1


def test_workers_flag_is_checked(capsys):
    fails_with_one_line(capsys, ["serve", "--workers", "0", "--database-url", "nowhere.db"], "--workers")


def test_serve_with_workers_on_a_busy_port_is_one_line(tmp_path, capsys):
    database = tmp_path / "served.db"
    opened = open_store(database)
    try:
        make_web_study(opened)
    finally:
        opened.close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fails_with_one_line(capsys, ["serve", "--database-url", str(database), "--port", str(port), "--workers", "2"],
                            f"cannot listen on 127.0.0.1:{port}: the port is in use")
    assert SETTINGS_ENV not in os.environ  # nothing started


def test_worker_app_is_built_from_the_settings_serve_writes(tmp_path, monkeypatch):
    database = tmp_path / "served.db"
    opened = open_store(database)
    try:
        make_web_study(opened, name="first")
        make_web_study(opened, name="second")
    finally:
        opened.close()
    settings = ServeSettings(database=f"sqlite:///{database}", study="first", idle_seconds=600.0, max_body=2048)
    monkeypatch.setenv(SETTINGS_ENV, settings.to_environment())
    assert ServeSettings.from_environment() == settings
    app = app_from_environment()
    assert app.state.study_name == "first" and app.state.session_idle.total_seconds() == 600
    app.state.store.close()
    monkeypatch.setenv(SETTINGS_ENV, '{"database": "x"}')
    with pytest.raises(NetrevealError, match="not the settings `netreveal serve` writes"):
        app_from_environment()
