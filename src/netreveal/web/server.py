"""``netreveal serve`` (uvicorn on 127.0.0.1:8000 by default) and ``netreveal account add|role``."""

from __future__ import annotations

import errno
import getpass
import ipaddress
import os
import socket
import sys
from pathlib import Path

from netreveal.errors import NetrevealError
from netreveal.store.db import DEFAULT_PATH, Store, open_store


def _database(args) -> str:
    return args.database_url or os.environ.get("NETREVEAL_DATABASE_URL") or DEFAULT_PATH


def open_existing(database: str) -> Store:
    """Open the store at ``database``; a missing SQLite file is an error (nothing is created)."""
    if "://" not in database and not Path(database).expanduser().is_file():
        raise NetrevealError(f"no study in {database}: run `netreveal demo` or `netreveal study create`")
    return open_store(database)


def check_port(host: str, port: int) -> None:
    """NetrevealError unless a server could listen on ``host:port`` now (bound and released at once,
    with the address reuse uvicorn also sets)."""
    if not 0 <= port <= 65535:
        raise NetrevealError(f"--port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise NetrevealError(f"cannot listen on {host}:{port}: unknown host ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise NetrevealError(f"cannot listen on {host}:{port}: {reason}") from None
def proxy_options(forwarded_allow_ips: str | None) -> dict:
    """uvicorn's options for trusting reverse proxies: none by default, so a client cannot pick its own
    address (rate limits per address) or scheme with forged X-Forwarded-* headers. Otherwise
    ``forwarded_allow_ips`` is ``*`` or comma-separated IP addresses or networks (NetrevealError else)."""
    if forwarded_allow_ips is None:
        return {"proxy_headers": False}
    value = forwarded_allow_ips.strip()
    if value != "*":
        items = []
        for item in (part.strip() for part in value.split(",")):
            try:
                parsed = ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
            except ValueError:
                raise NetrevealError(f"--forwarded-allow-ips: {item!r} is not an IP address or network "
                                     f"(give them comma-separated, or '*')") from None
            items.append(str(parsed))
        value = ",".join(items)
    return {"proxy_headers": True, "forwarded_allow_ips": value}


def run(args) -> int:
    """Serve the study ``args.study`` (default: the newest) of the database on ``args.host:args.port``."""
    import uvicorn

    from netreveal.web.app import create_app

    proxies = proxy_options(getattr(args, "forwarded_allow_ips", None))
    database = _database(args)
    store = open_existing(database)
    try:
        app = create_app(store, args.study)
        check_port(args.host, args.port)
        print(f"netreveal: serving study {app.state.study_name!r} on http://{args.host}:{args.port}/ "
              f"(Ctrl+C to stop)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **proxies)
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
