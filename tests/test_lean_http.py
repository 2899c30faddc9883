"""The load benchmark's small HTTP client: what it sends, what it reads back, and how it fails."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lean_http import ConnectionLost, LeanClient  # noqa: E402


async def _serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request(reader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    return head[0], headers, await reader.readexactly(int(headers.get("content-length", 0)))


def test_requests_cookies_and_both_body_framings_over_one_connection():
    seen = []

    async def handler(reader, writer):
        connections = len([s for s in seen if s == "open"])
        seen.append("open")
        for _ in range(2):
            line, headers, body = await _read_request(reader)
            seen.append((line, headers.get("cookie"), headers.get("x-csrf-token"), body, connections))
            if line.startswith("POST"):
                payload = json.dumps({"echo": json.loads(body)}).encode()
                writer.write(b"HTTP/1.1 201 Created\r\nset-cookie: sid=abc; Path=/; HttpOnly\r\n"
                             b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            else:  # chunked, in two chunks
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                             b"4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def scenario():
        server, port = await _serve(handler)
        client = LeanClient("127.0.0.1", port, headers={"X-Forwarded-For": "10.0.0.1"})
        first = await client.request("POST", "/api/x", json={"k": "é"}, headers={"X-CSRF-Token": "t1"})
        second = await client.request("GET", "/api/y")
        await client.aclose()
        server.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 201 and first.json() == {"echo": {"k": "é"}}
    assert second.status_code == 200 and second.json() == {"a": 1}
    assert seen[1] == ("POST /api/x HTTP/1.1", None, "t1", json.dumps({"k": "é"}).encode(), 0)
    assert seen[2] == ("GET /api/y HTTP/1.1", "sid=abc", None, b"", 0)  # same connection, cookie sent
    assert seen.count("open") == 1


def test_a_connection_the_server_closed_is_reported_lost_then_replaced():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.close()  # no answer

    async def scenario():
        server, port = await _serve(handler)
        client = LeanClient("127.0.0.1", port, timeout=5)
        with pytest.raises(ConnectionLost):
            await client.request("GET", "/")
        with pytest.raises(ConnectionLost):  # a new connection, closed again
            await client.request("GET", "/")
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await client.request("GET", "/")

    asyncio.run(scenario())
