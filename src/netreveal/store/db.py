"""Opening a store: an SQLite file by default (WAL mode), PostgreSQL by URL.

``open_store(url)`` returns a :class:`Store` whose ``session()`` is a context manager that commits
on success and rolls back on error. The schema is brought to the current version on open.

Engines never put SQL parameters into error messages (``hide_parameters``): a logged error must
not show what people typed, nor a password hash. :func:`unavailable_reason` tells the errors that
mean "the database cannot serve this now" (busy, read-only, full, unreachable) from real bugs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from netreveal.errors import NetrevealError
from netreveal.store.sqlite_writes import QueuedWriterConnection, before_write, writer_lock

DEFAULT_PATH = "netreveal.db"
SQLITE_BUSY_TIMEOUT = 10.0  # seconds an SQLite connection waits for another one's write lock


def database_url(url_or_path: str | os.PathLike | None = None) -> str:
    """A SQLAlchemy URL from a URL, a file path, or None (``$NETREVEAL_DATABASE_URL`` or ./netreveal.db)."""
    value = str(url_or_path) if url_or_path else os.environ.get("NETREVEAL_DATABASE_URL", DEFAULT_PATH)
    if "://" in value:
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://"):]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://"):]
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


PG_POOL_KEPT = 16  # PostgreSQL connections kept open per process (as many more for bursts)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, foreign keys, a busy timeout and, for a
    file, one writer at a time per process (:mod:`netreveal.store.sqlite_writes`). Error messages
    never carry the statement's parameters."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT,
                                                  "factory": QueuedWriterConnection},
                               hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            lock = writer_lock(str(Path(database).resolve()))

            def share_writer_lock(dbapi_connection, _record) -> None:
                dbapi_connection.writer = lock

            event.listen(engine, "connect", share_writer_lock)
            event.listen(engine, "before_cursor_execute", before_write)
        return engine
    # The pool keeps as many connections as the web app serves requests at once (half its capacity,
    # see web.app.request_limit): with fewer kept, every request past them opens a connection (a new
    # server process and a password exchange) and closes it again, which under load cost more than the
    # request's own queries. No ping before each checkout (a round trip per request): a connection the
    # server dropped fails its request with 503 + Retry-After (the game page retries it), and the pool
    # then replaces every connection opened before it at once.
    return create_engine(url, pool_pre_ping=False, pool_size=PG_POOL_KEPT, max_overflow=PG_POOL_KEPT,
                         hide_parameters=True)


# SQLite result codes and PostgreSQL SQLSTATEs (or their two-character classes) meaning the
# database cannot serve the request now, whatever the request: a retry later may work.
_SQLITE_UNAVAILABLE = {
    "SQLITE_BUSY": "busy", "SQLITE_LOCKED": "busy", "SQLITE_READONLY": "read-only", "SQLITE_FULL": "full",
    "SQLITE_IOERR": "unavailable", "SQLITE_CANTOPEN": "unavailable", "SQLITE_PROTOCOL": "busy",
}
_SQLITE_MESSAGES = {"database is locked": "busy", "database table is locked": "busy",
                    "readonly database": "read-only", "database or disk is full": "full",
                    "disk i/o error": "unavailable", "unable to open database": "unavailable"}
_PG_UNAVAILABLE = {
    "08": "unavailable", "53100": "full", "53": "unavailable", "57": "unavailable", "58": "unavailable",
    "25006": "read-only", "55P03": "busy", "40001": "busy", "40P01": "busy",
}


def unavailable_reason(error: BaseException) -> str | None:
    """``"busy"``, ``"read-only"``, ``"full"`` or ``"unavailable"`` when ``error`` says the database
    cannot serve the request now (locked, read-only, out of space, unreachable, no connection
    free); None for any other error (a bug, a constraint, bad SQL)."""
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection in use
        return "busy"
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return "unavailable"
    original = error.orig
    name = getattr(original, "sqlite_errorname", None)
    if name is not None:  # e.g. SQLITE_IOERR_WRITE: its primary code is SQLITE_IOERR
        return _SQLITE_UNAVAILABLE.get("_".join(name.split("_")[:2]))
    state = getattr(original, "sqlstate", None)
    if state:
        return _PG_UNAVAILABLE.get(state) or _PG_UNAVAILABLE.get(state[:2])
    if isinstance(error, sa_exc.OperationalError):  # an SQLite error without a result code
        text = str(original).lower()
        return next((reason for words, reason in _SQLITE_MESSAGES.items() if words in text), None)
    return None


class Store:
    """A database holding studies, people, guesses and concepts."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.lock_wait: float | None = None
        """Seconds a statement waits for a lock another connection holds before it fails (None: the
        backend's default, 10 s on SQLite and no limit on PostgreSQL). Applies to connections as
        they are next taken from the pool."""
        if engine.dialect.name in ("sqlite", "postgresql"):
            event.listen(engine, "checkout", self._apply_lock_wait)

    def _apply_lock_wait(self, dbapi_connection, record, _proxy) -> None:
        sqlite = self.engine.dialect.name == "sqlite"
        default = int(SQLITE_BUSY_TIMEOUT * 1000) if sqlite else 0
        wanted = default if self.lock_wait is None else max(1, int(self.lock_wait * 1000))
        if record.info.get("lock_wait_ms", default) == wanted:
            return
        cursor = dbapi_connection.cursor()
        if sqlite:
            cursor.execute(f"PRAGMA busy_timeout={wanted}")
            dbapi_connection.wait_seconds = wanted / 1000
        else:  # a session setting, kept once committed
            cursor.execute(f"SET lock_timeout = {wanted}")
            dbapi_connection.commit()
        cursor.close()
        record.info["lock_wait_ms"] = wanted

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def open_store(url_or_path: str | os.PathLike | None = None, *, upgrade: bool = True) -> Store:
    """Open (creating or upgrading to the current schema when ``upgrade``) the store at ``url_or_path``."""
    url = database_url(url_or_path)
    if url.startswith("sqlite:///"):
        parent = Path(url[len("sqlite:///"):]).parent
        if not parent.is_dir():
            raise NetrevealError(f"database folder {parent} does not exist")
    try:
        engine = make_engine(url)
    except Exception as exc:  # bad URL, missing driver
        raise NetrevealError(f"cannot open database {url!r}: {exc}") from exc
    store = Store(engine)
    if upgrade:
        from netreveal.store.schema import upgrade_schema

        upgrade_schema(store)
    return store
