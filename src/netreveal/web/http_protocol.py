"""The HTTP/1.1 protocol ``netreveal serve`` runs: uvicorn's httptools parser with a bound on headers.

httptools (llhttp, in C) parses a request for about a third less server CPU than h11 (pure Python)
does — a third of a reveal-game guess's cost over HTTP (``benchmarks/profile_guess.py``). uvicorn
limits the size of a request's head only with h11, so this protocol counts the request line and
header bytes as the parser reports them and refuses a head over ``HEADER_MAX_BYTES`` with 431,
closing the connection: a client cannot make the server hold headers without bound.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_MAX_BYTES = 16 * 1024  # a request line with its headers larger than this is refused (431)
_TOO_LARGE = "request line and headers too large (at most 16 KiB)"


class HeadersTooLarge(Exception):
    """Raised from a parser callback: the request's head passed :data:`HEADER_MAX_BYTES`."""


class BoundedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing request heads over :data:`HEADER_MAX_BYTES` (431)."""

    max_head_bytes = HEADER_MAX_BYTES
    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise HeadersTooLarge(_TOO_LARGE)  # stops the parser: the server answers and closes

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a parser error with 400; a head over the bound gets 431 and its reason."""
        if not self._head_too_large:
            return super().send_400_response(msg)
        body = _TOO_LARGE.encode("ascii")
        content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                        b"connection: close\r\n", b"\r\n", body])
        self.transport.write(b"".join(content))
        self.transport.close()
