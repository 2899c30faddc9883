"""Where one guess of the reveal game spends its time: the web app in this process, no network.

Signs up a few players (argon2 runs here only, before anything is measured), then posts a few hundred
guesses one after another through the app (httpx's ASGI transport: routing, dependencies,
validation, worker threads, the database; no sockets) and prints per guess: SQL statements and
commits, hops to a worker thread, CPU milliseconds of the process (steadier than wall time on a
shared machine) and wall milliseconds; with ``--profile``, the functions that take the CPU time
(cProfile over every thread) — and the same for the store call alone (``submit_guess`` and commit);
last, the same guesses over loopback to the app under uvicorn in a subprocess, and the CPU time
that server process used per request.

    python benchmarks/profile_guess.py                       # SQLite in a temporary folder
    python benchmarks/profile_guess.py --database-url postgresql+psycopg://u:p@127.0.0.1/db  # own schema, dropped after
    python benchmarks/profile_guess.py --profile             # and the top functions
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from game_db import CLASSES, build_study, scratch_database


class Counts:
    """SQL statements, commits and worker-thread hops, counted while ``on``; with ``profiles`` (a
    list) each worker-thread call also runs under a cProfile of its thread, added to that list."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.statements, self.commits, self.hops = Counter(), 0, 0
        self.worker_cpu = 0.0  # CPU seconds spent in worker-thread calls
        self.on = False
        self.profiles: list[cProfile.Profile] | None = None
        self._thread_profiles: dict[int, cProfile.Profile] = {}
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, statement, *_args):
        if self.on:
            self.statements[statement.split(None, 1)[0].upper()] += 1

    def _commit(self, _conn):
        self.commits += self.on

    def _measured(self, func):
        def run(*args, **kwargs):
            profile = None
            if self.profiles is not None:
                profile = self._thread_profiles.get(threading.get_ident())
                if profile is None:
                    profile = self._thread_profiles[threading.get_ident()] = cProfile.Profile(time.thread_time)
                    self.profiles.append(profile)
                profile.enable()
            start = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.worker_cpu += time.thread_time() - start
                if profile is not None:
                    profile.disable()

        return run

    @contextmanager
    def worker_hooks(self):
        """Count (and profile) every call the event loop hands to a worker thread."""
        import anyio.to_thread

        real = anyio.to_thread.run_sync

        async def counted(func, *args, **kwargs):
            self.hops += self.on
            if self.on:
                func = self._measured(func)
            return await real(func, *args, **kwargs)

        anyio.to_thread.run_sync = counted
        try:
            yield
        finally:
            anyio.to_thread.run_sync = real


@contextmanager
def profiled(profiles: list[cProfile.Profile] | None):
    """Run the block under ``profiles[0]`` (nothing when None)."""
    if profiles:
        profiles[0].enable()
    try:
        yield
    finally:
        if profiles:
            profiles[0].disable()


def top(profiles: list[cProfile.Profile], limit: int) -> None:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(limit)


async def http_guesses(app, counts: Counts, n: int, players: int, profile: bool, limit: int) -> None:
    import httpx

    transport = httpx.ASGITransport(app=app)
    clients = []
    for i in range(players):
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
        csrf = (await client.get("/api/session")).json()["csrf_token"]
        r = await client.post("/api/signup", json={"username": f"profiler{i}", "password": "load-password"},
                              headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        clients.append({"http": client, "csrf": r.json()["csrf_token"], "state": None})
    rng = random.Random(0)

    async def guess(player) -> None:
        http, headers = player["http"], {"X-CSRF-Token": player["csrf"]}
        if player["state"] is None or player["state"]["outcome"] is not None:
            was = counts.on
            counts.on = False  # a new round is not part of the guess
            player["state"] = (await http.post("/api/rounds", headers=headers)).json()
            counts.on = was
        state = player["state"]
        body = {"request_id": str(uuid.uuid4()), "guessed_class": rng.choice(CLASSES), "text": "label",
                "language": "en", "step": state["step"]}
        r = await http.post(f"/api/rounds/{state['game_id']}/guesses", json=body, headers=headers)
        assert r.status_code == 200, r.text
        ack = r.json()
        player["state"] = {**state, "outcome": ack["outcome"], "step": ack["next_step"]}

    for i in range(3 * players):  # warm up: caches, connections
        await guess(clients[i % players])
    wall, cpu = [], []
    loop_profile = cProfile.Profile(time.thread_time)
    counts.profiles = [loop_profile] if profile else None
    with counts.worker_hooks():
        counts.on = True
        if profile:
            loop_profile.enable()  # the event loop's thread; worker threads profile each call
        for i in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            await guess(clients[i % players])
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        loop_profile.disable()
        counts.on = False
    profiles = counts.profiles
    print(f"HTTP guess (in process, {n} guesses): {dict(counts.statements)} statements, "
          f"{counts.commits / n:.2f} commits, {counts.hops / n:.2f} worker-thread hops per guess")
    print(f"  CPU ms per guess (server and client): median {1000 * statistics.median(cpu):.2f}, "
          f"mean {1000 * statistics.fmean(cpu):.2f}, of which in worker threads {1000 * counts.worker_cpu / n:.2f}; "
          f"wall ms median {1000 * statistics.median(wall):.2f}")
    if profiles:
        top(profiles, limit)
    for player in clients:
        await player["http"].aclose()


def store_guesses(store, n: int, profile: bool, limit: int) -> None:
    """``submit_guess`` + commit alone, in this thread."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from netreveal.store import game as rules
    from netreveal.store.models import Account, Study

    with store.session() as session:
        player = Account(username="store-profiler", password_hash="-")
        session.add(player)
        session.flush()
        player_id = player.id
    rng = random.Random(1)
    game_id, cpu = None, []
    profiles = [cProfile.Profile(time.thread_time)] if profile else None
    with profiled(profiles):
        for _ in range(n):
            c0 = time.process_time()
            with Session(store.engine, expire_on_commit=False) as session:
                study = session.scalars(select(Study).limit(1)).one()
                player = session.get(Account, player_id)
                if game_id is None:
                    game_id = rules.start_round(session, study, player).id
                ack, _ = rules.submit_guess(session, study, player, game_id, request_id=str(uuid.uuid4()),
                                            guessed_class=rng.choice(CLASSES), text="label")
                session.commit()
            game_id = None if ack.outcome else game_id
            cpu.append(time.process_time() - c0)
    print(f"store only (submit_guess + commit, {n} guesses): CPU ms median {1000 * statistics.median(cpu):.2f}")
    if profiles:
        top(profiles, limit)


def server_guesses(url: str, n: int, tmp: str) -> None:
    """The same guesses, one after another, to the app under uvicorn in a subprocess: the server's
    CPU per request (read from /proc: HTTP parsing included, no client in the server's process)."""
    import httpx
    from load_game import Server, free_port, player_address

    server = Server(url, free_port(), 1, str(Path(tmp) / "server.log"))
    server.start()
    try:
        players = []
        for i in range(n // 20 + 2):  # the app allows 60 guesses a minute per player
            http = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30,
                                headers={"X-Forwarded-For": player_address(i)})  # one address per player
            csrf = http.get("/api/session").json()["csrf_token"]
            r = http.post("/api/signup", json={"username": f"profiler-http{i}", "password": "load-password"},
                          headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201, r.text
            players.append({"http": http, "headers": {"X-CSRF-Token": r.json()["csrf_token"]}, "state": None})
        rng, requests = random.Random(2), 0

        def guess(player) -> int:
            http, headers, state, sent = player["http"], player["headers"], player["state"], 1
            if state is None or state["outcome"] is not None:
                state = http.post("/api/rounds", headers=headers).json()
                sent += 1
            body = {"request_id": str(uuid.uuid4()), "guessed_class": rng.choice(CLASSES), "text": "label",
                    "language": "en", "step": state["step"]}
            r = http.post(f"/api/rounds/{state['game_id']}/guesses", json=body, headers=headers)
            assert r.status_code == 200, r.text
            ack = r.json()
            player["state"] = {**state, "outcome": ack["outcome"], "step": ack["next_step"]}
            return sent

        for player in players:  # warm up
            guess(player)
        cpu0 = server._cpu()
        for i in range(n):
            requests += guess(players[i % len(players)])
        cpu = server._cpu() - cpu0
        for player in players:
            player["http"].close()
    finally:
        server.stop()
    print(f"over HTTP to uvicorn ({n} guesses, {requests} requests with the rounds they need): server CPU ms "
          f"{1000 * cpu / n:.2f} per guess, {1000 * cpu / requests:.2f} per request")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--guesses", type=int, default=300)
    parser.add_argument("--players", type=int, default=10)
    parser.add_argument("--database-url", help="PostgreSQL URL: the study goes into a schema of its own, dropped after")
    parser.add_argument("--profile", action="store_true", help="print the functions that take the time")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from netreveal.store import open_store
    from netreveal.web.app import create_app
    from netreveal.web.ratelimit import RateLimit

    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, tmp) as url:
        build_study(url, max(40, args.guesses // 3), 3)  # enough pictures for every player's rounds
        store = open_store(url)
        try:
            counts = Counts(store.engine)
            app = create_app(store, rate_limit=RateLimit(guesses=10**9, signups=10**9, failed_logins=10**9))
            asyncio.run(http_guesses(app, counts, args.guesses, args.players, args.profile, args.top))
            store_guesses(store, args.guesses, args.profile, args.top)
        finally:
            store.close()
        server_guesses(url, args.guesses, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
