"""Bringing a database to the current schema version (Alembic, run in-process).

``upgrade_schema(store)`` works on an empty database, on one at any earlier revision and on one
made by ``Base.metadata.create_all`` without a version (it is recognised and stamped). The whole
upgrade is one transaction holding a lock — SQLite ``BEGIN IMMEDIATE`` (foreign keys off while
tables are copied, checked before commit), a PostgreSQL advisory lock — so processes opening the
same new database at once take turns: the first creates the schema, the others find it current.
How to add a revision: see :mod:`netreveal.store.migrations`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, exc, inspect, pool, text

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.migrations import MIGRATIONS_DIR, VERSION_TABLE
from netreveal.store.models import Base

PG_LOCK_KEY = 0x6E6574726576  # pg_advisory_xact_lock key of schema changes ("netrev")
SQLITE_LOCK_TIMEOUT = 60.0  # seconds a process waits for another one's upgrade
# Unversioned databases come from create_all; those missing the tables of 0002 predate it.
_SINCE_0002 = {"concept_events", "embeddings"}


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    """The revisions shipped with the package (read once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision: the schema of the current models."""
    head = script_directory().get_current_head()
    assert head is not None
    return head


def revision_number(revision: str) -> int:
    """The number of a revision id: ``0004`` -> 4."""
    match = re.fullmatch(r"(\d{4})", revision)
    if match is None:
        raise NetrevealError(f"revision id {revision!r} is not four digits")
    return int(match.group(1))


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None when it has no version table)."""
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def schema_diffs(connection: Connection) -> list:
    """Differences between the database and the models (Alembic's ``compare_metadata``; [] = equal)."""
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return compare_metadata(context, Base.metadata)


def upgrade_schema(store: Store, revision: str = "head") -> None:
    """Create or upgrade the schema of ``store`` to ``revision`` (default: the current models)."""
    target = head_revision() if revision == "head" else revision
    with _translate_errors(store):
        with store.engine.connect() as conn:  # the common case: already current, no lock needed
            if current_revision(conn) == target:
                return
        with _locked(store) as conn:
            current = current_revision(conn)
            if current == target:
                return
            if current is None:
                _stamp_unversioned(conn)
            _run(conn, lambda cfg: command.upgrade(cfg, revision))


def downgrade_schema(store: Store, revision: str) -> None:
    """Take the schema of ``store`` back to ``revision`` (``base`` drops every table)."""
    with _translate_errors(store), _locked(store) as conn:
        _run(conn, lambda cfg: command.downgrade(cfg, revision))


def make_revision(message: str, directory: str | os.PathLike | None = None) -> Path:
    """Autogenerate the next revision (``NNNN_<slug>.py``) from the models' differences to head.

    Builds a scratch SQLite database at head and lets Alembic compare it with the models. The file
    goes to the packaged ``versions`` folder, or to ``directory`` (which then joins the version
    locations, e.g. for a dry run). Returns its path; read and finish it before committing.
    """
    if not message.strip():
        raise NetrevealError("a revision needs a message")
    numbers = [revision_number(r.revision) for r in script_directory().walk_revisions()]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="netreveal-revision-") as tmp:
        from netreveal.store.db import open_store

        store = open_store(Path(tmp) / "head.db")
        try:
            cfg = alembic_config()
            cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
            version_path = None
            if directory is not None:
                version_path = str(Path(directory).resolve())
                cfg.set_main_option("version_locations", f"{MIGRATIONS_DIR / 'versions'} {version_path}")
                cfg.set_main_option("path_separator", "space")
            with store.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id,
                                          version_path=version_path)
        finally:
            store.close()
    return Path(script.path)


def _run(conn: Connection, action) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    action(cfg)


def _stamp_unversioned(conn: Connection) -> None:
    """Stamp a database holding our tables without a version with the revision it matches."""
    tables = set(inspect(conn).get_table_names())
    ours = tables & set(Base.metadata.tables)
    if not ours:
        return  # empty (or only foreign tables): the upgrade creates everything
    inspector = inspect(conn)
    if not schema_diffs(conn):
        stamp = head_revision()
    elif "rate_limits" in ours:
        stamp = "0008"
    elif "studies" in ours and any(c["name"] == "building_at" for c in inspector.get_columns("studies")):
        stamp = "0007"
    elif "invitations" in ours:
        stamp = "0006"
    elif "login_throttles" in ours:
        stamp = "0005"
    elif "eval_questions" in ours:
        stamp = "0004"
    elif "items" in ours and any(ix["name"] == "ix_items_gallery" for ix in inspector.get_indexes("items")):
        stamp = "0003"
    elif ours & _SINCE_0002:
        stamp = "0002"
    else:
        stamp = "0001"
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    context.stamp(script_directory(), stamp)


@contextmanager
def _locked(store: Store) -> Iterator[Connection]:
    """A connection in a transaction that holds the schema lock; committed on success."""
    if store.engine.dialect.name == "sqlite" and store.engine.url.database not in (None, "", ":memory:"):
        engine = create_engine(
            store.engine.url,
            poolclass=pool.NullPool,
            connect_args={"check_same_thread": False, "timeout": SQLITE_LOCK_TIMEOUT},
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=OFF")  # tables may be copied (batch migrations)
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, before reading the version

        try:
            with engine.begin() as conn:
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise NetrevealError(f"schema upgrade would break {len(broken)} foreign key(s); nothing changed")
        finally:
            engine.dispose()
    else:
        with store.engine.begin() as conn:
            if store.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            yield conn


@contextmanager
def _translate_errors(store: Store) -> Iterator[None]:
    """A database that cannot be reached or read becomes one line naming it."""
    try:
        yield
    except exc.DBAPIError as err:  # unreachable server, bad credentials, not a database file...
        reason = str(getattr(err, "orig", err)).strip().splitlines()
        raise NetrevealError(
            f"cannot open database {store.url}: {reason[0] if reason else type(err).__name__}"
        ) from err
