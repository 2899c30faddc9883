"""``netreveal serve`` (uvicorn on 127.0.0.1:8000 by default) and ``netreveal account add|role``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from netreveal.errors import NetrevealError
from netreveal.store.db import DEFAULT_PATH, Store, open_store

HEADER_MAX_BYTES = 16 * 1024  # a request line with its headers larger than this is refused (400)
KEEP_ALIVE_SECONDS = 5  # an idle connection is closed after this long
MAX_BODY_KB_LIMIT = 1024 * 1024  # --max-body-kb at most 1 GiB


def _database(args) -> str:
    return args.database_url or os.environ.get("NETREVEAL_DATABASE_URL") or DEFAULT_PATH


def open_existing(database: str) -> Store:
    """Open the store at ``database``; a missing SQLite file is an error (nothing is created)."""
    if "://" not in database and not Path(database).expanduser().is_file():
        raise NetrevealError(f"no study in {database}: run `netreveal demo` or `netreveal study create`")
    return open_store(database)


def max_body_bytes(kib: int) -> int:
    """``--max-body-kb`` in bytes; NetrevealError outside 1 KiB to 1 GiB."""
    if not 1 <= kib <= MAX_BODY_KB_LIMIT:
        raise NetrevealError(f"--max-body-kb must be between 1 and {MAX_BODY_KB_LIMIT}, got {kib}")
    return kib * 1024


def run(args) -> int:
    """Serve the study ``args.study`` (default: the newest) of the database on ``args.host:args.port``.

    The HTTP parser is h11, which refuses request headers over :data:`HEADER_MAX_BYTES`; idle
    connections close after :data:`KEEP_ALIVE_SECONDS`; bodies are bounded by the app
    (``--max-body-kb``, read within a time limit)."""
    import uvicorn

    from netreveal.web.app import create_app

    max_body = max_body_bytes(getattr(args, "max_body_kb", 64))
    database = _database(args)
    store = open_existing(database)
    try:
        app = create_app(store, args.study, max_body=max_body)
        print(f"netreveal: serving study {app.state.study_name!r} on http://{args.host}:{args.port}/ "
              f"(Ctrl+C to stop)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=True, http="h11",
                    h11_max_incomplete_event_size=HEADER_MAX_BYTES, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    finally:
        store.close()
    return 0


def read_password(username: str) -> str:
    """The new account's password: the first line of stdin when piped, else prompted twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.removesuffix("\n")
    first = getpass.getpass(f"password for {username}: ")
    if getpass.getpass("again: ") != first:
        raise NetrevealError("the two passwords differ")
    return first


def run_account(args) -> int:
    """``account add NAME --role R`` (password from stdin or prompt) and ``account role NAME R``."""
    from netreveal.store import accounts

    password = None
    if args.account_command == "add":
        accounts.check_username(args.username)
        password = accounts.check_password(read_password(args.username))
    store = open_store(_database(args))
    try:
        with store.session() as session:
            if args.account_command == "add":
                account = accounts.create_account(session, args.username, password, args.role)
                print(f"added {account.role} {account.username}")
            else:
                account = accounts.set_role(session, args.username, args.role)
                print(f"{account.username} is now {account.role}")
    finally:
        store.close()
    return 0
