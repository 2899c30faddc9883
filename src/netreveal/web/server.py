"""``netreveal serve``: uvicorn on 127.0.0.1:8000 by default."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from netreveal.errors import NetrevealError
from netreveal.store.accounts import SESSION_DAYS, SESSION_IDLE
from netreveal.store.db import DEFAULT_PATH, Store, open_store


def _database(args) -> str:
    return args.database_url or os.environ.get("NETREVEAL_DATABASE_URL") or DEFAULT_PATH


def open_existing(database: str) -> Store:
    """Open the store at ``database``; a missing SQLite file is an error (nothing is created)."""
    if "://" not in database and not Path(database).expanduser().is_file():
        raise NetrevealError(f"no study in {database}: run `netreveal demo` or `netreveal study create`")
    return open_store(database)


def idle_timeout(minutes: float | None) -> timedelta:
    """The sessions' idle timeout from ``--idle-minutes`` (None: the default); NetrevealError unless positive."""
    if minutes is None:
        return SESSION_IDLE
    if not minutes > 0 or minutes > 60 * 24 * SESSION_DAYS:
        raise NetrevealError(f"--idle-minutes must be more than 0 and at most {60 * 24 * SESSION_DAYS} "
                             "(the sessions' lifetime)")
    return timedelta(minutes=minutes)


def run(args) -> int:
    """Serve the study ``args.study`` (default: the newest) of the database on ``args.host:args.port``."""
    import uvicorn

    from netreveal.web.app import create_app

    idle = idle_timeout(getattr(args, "idle_minutes", None))
    store = open_existing(_database(args))
    try:
        app = create_app(store, args.study, session_idle=idle)
        print(f"netreveal: serving study {app.state.study_name!r} on http://{args.host}:{args.port}/ "
              f"(Ctrl+C to stop)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=True)
    finally:
        store.close()
    return 0
