"""One writer at a time per SQLite file within a process, queued on a lock instead of SQLite's busy wait.

SQLite lets one connection write at a time. A connection that finds the write lock taken waits in
SQLite's busy handler, which sleeps in growing steps (1, 2, 5 … 100 ms) and polls: under a web
server's load, threads of one process that write at once wake late and the slowest requests wait
hundreds of milliseconds for a lock that was free long before. Here a write statement first takes
a process-wide lock for its database file (a waiting thread wakes as soon as the lock is released),
and the connection gives it back once its transaction is committed or rolled back. Writers in
other processes still meet SQLite's own lock and busy timeout.

Reads are not queued: outside a transaction pysqlite runs them on their own (WAL readers do not
block the writer). Only statements that start a write transaction (``INSERT``, ``UPDATE``,
``DELETE``, ``REPLACE``) take the lock; the connection holds it until the transaction ends.
"""

from __future__ import annotations

import sqlite3
import threading

_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def writer_lock(database: str) -> threading.Lock:
    """The process-wide lock of the SQLite file ``database`` (one per file)."""
    with _locks_guard:
        return _locks.setdefault(database, threading.Lock())


def is_write(statement: str) -> bool:
    """True when ``statement`` starts a write transaction in pysqlite's default mode."""
    words = statement.lstrip()[:8].split(None, 1)
    return bool(words) and words[0].upper() in _WRITE_VERBS


class QueuedWriterConnection(sqlite3.Connection):
    """An SQLite connection that takes its file's writer lock before writing and gives it back when
    the transaction ends (commit, rollback or close)."""

    writer: threading.Lock | None = None
    wait_seconds: float = 10.0
    _holding = False

    def take_writer_lock(self) -> None:
        """Block until this connection may write (at most ``wait_seconds``; then "database is locked",
        as SQLite's busy timeout says it)."""
        if self._holding or self.writer is None or self.in_transaction:
            return
        if not self.writer.acquire(timeout=self.wait_seconds):
            raise sqlite3.OperationalError("database is locked")
        self._holding = True

    def _give_back(self) -> None:
        if self._holding:
            self._holding = False
            self.writer.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def before_write(conn, cursor, statement: str, parameters, context, executemany: bool) -> None:
    """SQLAlchemy ``before_cursor_execute`` hook: take the writer lock before a write statement."""
    dbapi = cursor.connection
    if isinstance(dbapi, QueuedWriterConnection) and is_write(statement):
        dbapi.take_writer_lock()
