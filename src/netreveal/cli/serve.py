"""``netreveal serve``: uvicorn on 127.0.0.1:8000 by default, in one process or ``--workers N``."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

from netreveal.errors import NetrevealError
from netreveal.store.accounts import SESSION_DAYS, SESSION_IDLE
from netreveal.store.db import DEFAULT_PATH, Store, open_store

KEEP_ALIVE_SECONDS = 5  # an idle connection is closed after this long
MAX_BODY_KB_LIMIT = 1024 * 1024  # --max-body-kb at most 1 GiB
MAX_WORKERS = 64  # --workers at most


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


def idle_timeout(minutes: float | None) -> timedelta:
    """The sessions' idle timeout from ``--idle-minutes`` (None: the default); NetrevealError unless positive."""
    if minutes is None:
        return SESSION_IDLE
    if not minutes > 0 or minutes > 60 * 24 * SESSION_DAYS:
        raise NetrevealError(f"--idle-minutes must be more than 0 and at most {60 * 24 * SESSION_DAYS} "
                             "(the sessions' lifetime)")
    return timedelta(minutes=minutes)


def max_body_bytes(kib: int) -> int:
    """``--max-body-kb`` in bytes; NetrevealError outside 1 KiB to 1 GiB."""
    if not 1 <= kib <= MAX_BODY_KB_LIMIT:
        raise NetrevealError(f"--max-body-kb must be between 1 and {MAX_BODY_KB_LIMIT}, got {kib}")
    return kib * 1024


def worker_count(workers: int) -> int:
    """``--workers``; NetrevealError outside 1 to :data:`MAX_WORKERS`."""
    if not 1 <= workers <= MAX_WORKERS:
        raise NetrevealError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    return workers


def run(args) -> int:
    """Serve the study ``args.study`` (default: the newest) of the database on ``args.host:args.port``,
    in ``args.workers`` processes (uvicorn workers sharing the port; each builds its app from the
    settings checked here, see :mod:`netreveal.web.serving`).

    The HTTP parser is httptools, refusing a request line and headers over 16 KiB with 431
    (:mod:`netreveal.web.http_protocol`); idle connections close after :data:`KEEP_ALIVE_SECONDS`;
    bodies are bounded by the app (``--max-body-kb``, read within a time limit)."""
    import uvicorn

    from netreveal.store.db import database_url
    from netreveal.web.app import resolve_study
    from netreveal.web.explanations import warm_up
    from netreveal.web.http_protocol import BoundedHeadersProtocol
    from netreveal.web.serving import APP_FACTORY, SETTINGS_ENV, ServeSettings, build_app

    proxies = proxy_options(getattr(args, "forwarded_allow_ips", None))
    idle = idle_timeout(getattr(args, "idle_minutes", None))
    max_body = max_body_bytes(getattr(args, "max_body_kb", 64))
    workers = worker_count(getattr(args, "workers", 1))
    database = _database(args)
    store = open_existing(database)
    try:
        settings = ServeSettings(database=database_url(database), study=resolve_study(store, args.study).name,
                                 idle_seconds=idle.total_seconds(), max_body=max_body)
        app = build_app(store, settings)  # every check of the app, before anything listens
        check_port(args.host, args.port)
        warm_up(app)  # the explanation pages are prepared while the server starts
        processes = f" in {workers} worker processes" if workers > 1 else ""
        print(f"netreveal: serving study {settings.study!r} on http://{args.host}:{args.port}/{processes} "
              f"(Ctrl+C to stop)", file=sys.stderr)
        options = dict(host=args.host, port=args.port, log_level="warning", http=BoundedHeadersProtocol,
                       timeout_keep_alive=KEEP_ALIVE_SECONDS,
                       **proxies)
        if workers == 1:
            uvicorn.run(app, **options)
            return 0
        store.close()  # the workers open their own
        os.environ[SETTINGS_ENV] = settings.to_environment()
        uvicorn.run(APP_FACTORY, factory=True, workers=workers, **options)
    finally:
        store.close()
    return 0
