"""A small HTTP/1.1 keep-alive client on asyncio streams, for load generators on the server's machine.

httpx costs about 2.4 ms of CPU per request here (200 players x 20 guesses: 12-16 CPU s for about
5,800 requests), close to what the server spends answering one; this client costs about 0.4 ms
(2-3 CPU s). With the simulated players on the same 2 cores as the server, httpx's share takes
cores the server needs and inflates the latency measured. This client does only what the load
benchmark needs: one connection, JSON bodies, a cookie jar, ``Content-Length`` or chunked answers.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from http.cookies import SimpleCookie
from typing import Any


class LeanResponse:
    def __init__(self, status_code: int, headers: dict[str, str], content: bytes):
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class ConnectionLost(ConnectionError):
    """The server closed the connection or answered something that is not HTTP."""


class LeanClient:
    """One keep-alive connection to ``host:port``; reconnects on the next request after an error."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, url: str, json: Any = None,
                      headers: dict[str, str] | None = None) -> LeanResponse:
        """Send one request and read its answer. ConnectionRefusedError, ConnectionLost (also for a
        reset), or TimeoutError when there is none; the connection is then dropped."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, url, json, headers)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
            await self.aclose()
            if isinstance(error, (TimeoutError, ConnectionRefusedError)):
                raise
            raise ConnectionLost(str(error) or type(error).__name__) from error

    async def _exchange(self, method: str, url: str, json: Any, headers: dict[str, str] | None) -> LeanResponse:
        if self._writer is not None and self._reader.at_eof():  # the server closed it while idle
            await self.aclose()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        body = b"" if json is None else jsonlib.dumps(json).encode()
        lines = [f"{method} {url} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if json is not None:
            lines.append("Content-Type: application/json")
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items() if v]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        reader = self._reader
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionLost(f"not an HTTP answer: {status_line[:60]!r}")
        answer_headers: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                for key, morsel in SimpleCookie(value).items():
                    self.cookies[key] = morsel.value
            answer_headers[name] = value
        if answer_headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunks(reader)
        else:
            content = await reader.readexactly(int(answer_headers.get("content-length", "0")))
        if answer_headers.get("connection", "").lower() == "close":
            await self.aclose()
        return LeanResponse(int(parts[1]), answer_headers, content)

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        content = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(content)
            content += await reader.readexactly(size)
            await reader.readexactly(2)

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
