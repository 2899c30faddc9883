"""Opening a store: an SQLite file by default (WAL mode), PostgreSQL by URL.

``open_store(url)`` returns a :class:`Store` whose ``session()`` is a context manager that commits
on success and rolls back on error. The schema is brought to the current version on open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from netreveal.errors import NetrevealError

DEFAULT_PATH = "netreveal.db"


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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Store:
    """A database holding studies, people, guesses and concepts."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

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
