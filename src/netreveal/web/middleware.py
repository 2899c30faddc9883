"""The web app's ASGI middlewares, outermost first:

- :class:`SecurityHeaders`: security headers on every response (``Cache-Control: no-store`` on
  JSON, HSTS only over https);
- :class:`OriginCheck`: a state-changing request sent from another site's page is refused (403),
  a second layer beside the CSRF tokens;
- :class:`BodyLimit`: each request's body is read in full here, before any route or lock sees it,
  and refused when too large (413) or too slow (408);
- :class:`ConcurrencyLimit`: at most so many requests are served at once.

All are pure ASGI (no per-request task): they run on every request.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    # scripts and styles come from /static only: pages put their code in static files, never inline
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
                                  b"style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                  b"frame-ancestors 'none'")),
    (b"permissions-policy", (b"accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), "
                             b"gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=()")),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
NO_STORE = (b"cache-control", b"no-store")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_MAX_BODY = 64 * 1024  # bytes: forms and JSON calls are a few hundred bytes
DEFAULT_BODY_TIMEOUT = 20.0  # seconds to receive a whole body


async def send_json(send, status: int, detail: str, *, close: bool = False) -> None:
    """Answer ``{"detail": detail}`` with ``status`` (``close``: and end the connection)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SecurityHeaders:
    """Adds the security headers to every HTTP response; ``Cache-Control: no-store`` to JSON
    answers that set no caching of their own (they are about the logged-in person); HSTS when the
    request came over https (directly, or through a trusted proxy that said so)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = list(SECURITY_HEADERS)
        if scope.get("scheme") == "https":
            extra.append(HSTS)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower(): v for k, v in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                if b"cache-control" not in present and present.get(b"content-type", b"").startswith(
                        b"application/json"):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url`` with the default port filled in; None when it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or {"http": 80, "https": 443}.get(scheme)


def own_origin(scope) -> tuple[str, str, int | None] | None:
    """The app's origin as the request addressed it: its scheme and ``Host`` header."""
    host = _header(scope, b"host")
    if not host:
        return None
    return _origin(f"{scope.get('scheme', 'http')}://{host}")


class OriginCheck:
    """Refuses (403) a POST, PUT, PATCH or DELETE whose ``Origin`` header names another origin than
    the app's own (scheme, host and port of the request), or, without ``Origin``, whose ``Referer``
    does. Browsers send ``Origin`` on such requests, so a form or script on another site cannot
    change anything even with a stolen CSRF token; requests with neither header (command-line
    clients) still need the CSRF token."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in STATE_CHANGING:
            return await self.app(scope, receive, send)
        sent = _header(scope, b"origin")
        source = "Origin"
        if sent is None:
            sent = _header(scope, b"referer")
            source = "Referer"
        if sent is not None and (_origin(sent) is None or _origin(sent) != own_origin(scope)):
            return await send_json(send, 403, f"request from another site refused ({source} {sent[:100]!r})")
        await self.app(scope, receive, send)


class BodyLimit:
    """Reads each request's body before the app runs: at most ``max_bytes`` (413 at once when
    ``Content-Length`` says more, or as soon as a streamed body passes it) within ``timeout``
    seconds (408). The app then gets the body in one message, so a client sending slowly holds no
    concurrency slot, database connection or thread while it does."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY, timeout: float = DEFAULT_BODY_TIMEOUT):
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    def _too_large(self) -> str:
        return f"request body too large (at most {self.max_bytes // 1024} KiB)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return await send_json(send, 400, "bad Content-Length header", close=True)
            if int(length) > self.max_bytes:
                return await send_json(send, 413, self._too_large(), close=True)
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_bytes:
                        return await send_json(send, 413, self._too_large(), close=True)
        except TimeoutError:
            return await send_json(send, 408, f"request body not received within {self.timeout:g} s", close=True)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # what comes after the body: the client leaving
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


class ConcurrencyLimit:
    """At most ``limit`` requests past this point at once (static files excepted); the rest wait here.

    Each request holds one database connection from its first query to its commit, and sync routes
    run on a bounded thread pool: without a bound, a burst of requests can take every connection
    while the requests holding them wait for a thread. Waiting here costs neither. Bodies are read
    before this point (:class:`BodyLimit`), so a slow client does not hold a place."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)
