"""Transport limits of the web app: request bodies are capped and read (within a time limit) before
a request takes a concurrency slot; security headers; state-changing requests from other sites.

The ASGI-level tests call the app directly with a hand-made ``receive`` (a client that sends too
much, too slowly, or nothing); the live tests run ``netreveal serve`` in a subprocess on a free
loopback port and talk to it over sockets.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_checks import fails_with_one_line
from dbs import write_lock
from fastapi.testclient import TestClient
from webstudy import Client, build_template, copy_store, counts, free_port

from netreveal.web.app import LOCK_WAIT, create_app, request_limit
from netreveal.web.middleware import DEFAULT_MAX_BODY
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)
JSON = (b"content-type", b"application/json")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "transport.db"
    return path, build_template(path)


@pytest.fixture
def store(tmp_path, template):
    store = copy_store(template[0], tmp_path / "transport.db")
    yield store
    store.close()


@pytest.fixture
def app(store):
    return create_app(store, "tiny", rate_limit=ROOMY)


# ---- the app called over ASGI ------------------------------------------------------------------

async def call(app, method: str, path: str, receive, headers=(), timeout: float = 10.0):
    """(status, headers, body) of one request given to the ASGI app; TimeoutError after ``timeout``."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80)}
    sent = []

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def client_sending(*chunks: bytes, then_wait: bool = False):
    """A ``receive`` giving ``chunks`` one per call (the last ends the body unless ``then_wait``), then
    waiting forever (a client that stopped sending, or that waits for the answer)."""
    queue = list(chunks)

    async def receive():
        await asyncio.sleep(0)  # a real client is awaited: let timers run
        if queue:
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(queue) or then_wait}
        await asyncio.Event().wait()

    return receive


def test_a_body_announced_over_the_limit_is_refused_before_reading_it(app):
    async def receive():
        raise AssertionError("the body was read")

    status, headers, body = asyncio.run(call(app, "POST", "/api/login", receive,
                                             headers=[JSON, (b"content-length", b"104857600")]))
    assert status == 413 and headers[b"connection"] == b"close"
    assert "too large" in json.loads(body)["detail"]


def test_a_streamed_body_is_cut_off_at_the_limit(app):
    pulled = []
    chunk = b"x" * 8192

    async def receive():  # a chunked upload of 1 MiB: the app must stop well before its end
        await asyncio.sleep(0)
        pulled.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < 128}

    status, _, _ = asyncio.run(call(app, "POST", "/api/login", receive, headers=[JSON]))
    assert status == 413
    assert sum(pulled) <= DEFAULT_MAX_BODY + len(chunk)


def test_bodies_up_to_the_limit_pass_and_the_limit_can_be_set(store, app):
    c = Client(app)
    at_limit = c.http.post("/api/login", content=b" " * DEFAULT_MAX_BODY, headers={"content-type": "application/json"})
    assert at_limit.status_code not in (408, 413)  # the app judged it (the token is missing)
    over = c.http.post("/api/login", content=b" " * (DEFAULT_MAX_BODY + 1),
                       headers={"content-type": "application/json"})
    assert over.status_code == 413
    small = Client(create_app(store, "tiny", rate_limit=ROOMY, max_body=1024))
    before = counts(store)
    assert small.signup("long_one", password="p" * 2000).status_code == 413
    assert counts(store) == before
    assert small.signup("short_one").status_code == 201


def test_a_body_not_received_in_time_is_408(store):
    app = create_app(store, "tiny", rate_limit=ROOMY, body_timeout=0.3)
    started = time.monotonic()
    status, headers, _ = asyncio.run(call(app, "POST", "/api/login", client_sending(b'{"user', then_wait=True),
                                          headers=[JSON, (b"content-length", b"100")]))
    assert status == 408 and headers[b"connection"] == b"close"
    assert time.monotonic() - started < 3


def test_clients_sending_slowly_hold_no_request_slot(store, app):
    """More slow uploads than the app serves requests at once: a normal request is still answered."""
    slow = request_limit(store) + 2

    async def scenario():
        uploads = [asyncio.create_task(call(app, "POST", "/api/login",
                                            client_sending(b'{"username": "sl', then_wait=True),
                                            headers=[JSON, (b"content-length", b"100")], timeout=60))
                   for _ in range(slow)]
        await asyncio.sleep(0.3)  # every upload is under way
        try:
            status, _, body = await call(app, "GET", "/api/session", client_sending(b""), timeout=5)
            return status, json.loads(body), [u.done() for u in uploads]
        finally:
            for upload in uploads:
                upload.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)

    status, body, finished = asyncio.run(scenario())
    assert status == 200 and body["account"] is None
    assert not any(finished)  # the uploads were still waiting for their bodies


# ---- headers and the Origin check --------------------------------------------------------------

def test_json_is_not_stored_and_pages_forbid_powerful_features(store, app):
    c = Client(app)
    c.signup("header_one")
    state = c.start()
    for r in (c.get("/api/session"), c.get("/api/stats"), c.get(f"/api/rounds/{state['game_id']}"),
              c.get("/api/rounds/999999"), c.post("/api/rounds/999999/resign")):
        assert r.headers["content-type"].startswith("application/json")
        assert r.headers["cache-control"] == "no-store", r.url
    picture = c.get(state["frame_url"])
    assert picture.headers["cache-control"] == "private, max-age=3600"  # a picture keeps its own
    page = c.get("/play")
    policy = page.headers["permissions-policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert "strict-transport-security" not in page.headers  # plain http: HSTS would be ignored or wrong
    r = TestClient(app, base_url="https://testserver").get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_state_changing_requests_from_another_site_are_refused(store, app):
    c = Client(app)
    assert c.signup("origin_one").status_code == 201
    before = counts(store)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Origin": "http://testserver.evil.example"}, {"Origin": "https://testserver"},
                    {"Referer": "https://evil.example/page"}):
        r = c.post("/api/rounds", headers=headers)
        assert r.status_code == 403, headers
        assert "another site" in r.json()["detail"]
    r = c.http.post("/logout", data={"csrf_token": c.csrf}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert counts(store) == before
    for headers in ({"Origin": "http://testserver"}, {"Origin": "http://testserver:80"},
                    {"Referer": "http://testserver/play"}, {}):
        assert c.post("/api/rounds", headers=headers).status_code == 200, headers
    assert c.get("/api/session", headers={"Origin": "https://evil.example"}).status_code == 200  # reads pass


def test_max_body_flag_is_checked(capsys):
    fails_with_one_line(capsys, ["serve", "--max-body-kb", "0", "--database-url", "nowhere.db"], "--max-body-kb")


# ---- a real server --------------------------------------------------------------------------------

class Served:
    """``netreveal serve`` in a subprocess on a free loopback port (stderr kept in a file)."""

    def __init__(self, database: Path, *extra: str):
        self.database = database
        self.port = free_port()
        self.log = database.with_suffix(".log")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        with open(self.log, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "netreveal.cli", "serve", "--database-url", str(database),
                 "--port", str(self.port), *extra], stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + 90
        while raw_request(self.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          quiet=True) is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the server did not start: {self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        return self.log.read_text()


def raw_request(port: int, data: bytes, *, quiet: bool = False, timeout: float = 10.0) -> bytes | None:
    """The server's whole answer to ``data`` sent as is (None when nothing answers and ``quiet``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            try:
                conn.sendall(data)
            except OSError:  # the server answered and closed before everything was sent
                pass
            answer = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
            return answer
    except OSError:
        if quiet:
            return None
        raise


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory, template):
    folder = tmp_path_factory.mktemp("served")
    copy_store(template[0], folder / "served.db").close()
    server = Served(folder / "served.db", "--max-body-kb", "1")
    yield server
    server.stop()


def test_live_server_refuses_large_bodies_and_headers(served):
    started = time.monotonic()
    answer = raw_request(served.port, b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 104857600\r\n\r\n")
    assert status_of(answer) == 413 and time.monotonic() - started < 5
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    answer = raw_request(served.port, b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 4 + b"0\r\n\r\n")
    assert status_of(answer) == 413
    answer = raw_request(served.port, b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 512\r\nConnection: close\r\n\r\n" + b" " * 512)
    assert status_of(answer) not in (408, 413)  # within --max-body-kb 1
    answer = raw_request(served.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1048576
                         + b"\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 431 and b"headers too large" in answer  # not buffered without bound
    answer = raw_request(served.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 2000
                         + b"Connection: close\r\n\r\n")
    assert status_of(answer) == 431  # many small headers count together
    answer = raw_request(served.port, b"GET /api/session?" + b"q" * 20000 + b" HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
    assert status_of(answer) == 431  # and the request line
    answer = raw_request(served.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 15000
                         + b"\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200  # under the bound


def test_live_server_answers_while_clients_trickle_their_bodies(served):
    slow = []
    try:
        for _ in range(12):  # more than the app serves at once
            conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            conn.sendall(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"user")
            slow.append(conn)
        time.sleep(0.5)
        started = time.monotonic()
        answer = raw_request(served.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                             timeout=10)
        assert status_of(answer) == 200 and time.monotonic() - started < 3
    finally:
        for conn in slow:
            conn.close()


def test_live_server_answers_503_quickly_when_the_database_is_locked_and_logs_no_hash(served):
    answer = raw_request(served.port, b"GET /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    cookie = next(line.split(b":", 1)[1].split(b";")[0].strip() for line in head.split(b"\r\n")
                  if line.lower().startswith(b"set-cookie:"))
    token = json.loads(body)["csrf_token"].encode()
    signup = json.dumps({"username": "locked_out", "password": "secret-password-9"}).encode()
    request = (b"POST /api/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nCookie: " + cookie
               + b"\r\nX-CSRF-Token: " + token + b"\r\nContent-Length: " + str(len(signup)).encode()
               + b"\r\nConnection: close\r\n\r\n" + signup)
    with write_lock(f"sqlite:///{served.database}"):
        started = time.monotonic()
        answer = raw_request(served.port, request, timeout=30)
        took = time.monotonic() - started
    assert status_of(answer) == 503 and b"\r\nretry-after: " in answer.lower()
    assert took < LOCK_WAIT + 4
    assert status_of(raw_request(served.port, request)) == 201  # the lock is gone: it works
    log = served.log.read_text()
    assert "503" in log and "$argon2" not in log
