"""Load on the reveal game over HTTP: concurrent players, guess latency, and no guess lost or stored twice.

Starts ``netreveal``'s web app under uvicorn in a subprocess (SQLite file in a temporary folder,
a small study), then runs simulated players on loopback: each signs up, plays rounds (sometimes
asking to see more), and posts guesses with client-generated request ids, retrying on connection
errors and server errors with the same request id until acknowledged. It prints throughput and
latency, then checks the database: every acknowledged guess is stored exactly once (by request id,
with the acknowledged step and correctness), nothing unacknowledged is stored, item label counts
and round outcomes agree with the guesses, and SQLite's integrity and foreign-key checks pass.

``--kill``: when half of all guesses are acknowledged the server gets SIGKILL, stays down for
``--downtime`` seconds and is started again on the same database; players keep retrying.

    python benchmarks/load_game.py                 # 50 players x 20 guesses, ~1 s per move
    python benchmarks/load_game.py --kill          # the same, with a kill -9 and restart halfway
    python benchmarks/load_game.py --think 0       # back-to-back requests: the server's capacity

Players take ``--think`` seconds on average before each guess or reveal (people need longer to look
and type: 1 s is a fast player). With ``--think 0`` every player has a request in flight at all
times, so latency is players / throughput (Little's law) and measures capacity, not responsiveness.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

CLASSES = ["cat", "dog", "fish", "bird"]
STEPS = 6
POINTS = (100, 70, 50, 35, 20, 10)


# ---- the server ------------------------------------------------------------------------------------

def build_study(db_path: str, images: int, layers: int) -> None:
    """A study with ``images`` x ``layers`` items, six reveal frames each (small PNGs)."""
    from PIL import Image

    from netreveal.store import open_store
    from netreveal.store.models import REVEAL_PERCENTS, Item, Media, RevealFrame, Study, StudyImage

    def png(seed: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (32, 32), ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)).save(out, "PNG")
        return out.getvalue()

    store = open_store(db_path)
    with store.session() as s:
        study = Study(name="load", model="synthetic", classes=CLASSES, layers=[f"layer{i}" for i in range(layers)])
        s.add(study)
        s.flush()
        seed = 0
        for i in range(images):
            seed += 1
            media = Media(study_id=study.id, png=png(seed))
            s.add(media)
            s.flush()
            cls = CLASSES[i % len(CLASSES)]
            image = StudyImage(study_id=study.id, key=f"img{i}", true_class=cls, predicted_class=cls,
                               probability=0.9, media_id=media.id)
            s.add(image)
            s.flush()
            for depth in range(layers):
                seed += 1
                cluster_map = Media(study_id=study.id, png=png(seed))
                s.add(cluster_map)
                s.flush()
                item = Item(study_id=study.id, image_id=image.id, layer=f"layer{depth}", depth=depth, cluster=0,
                            weight=50.0, channels=[0], map_media_id=cluster_map.id)
                s.add(item)
                s.flush()
                for step, percent in enumerate(REVEAL_PERCENTS, start=1):
                    seed += 1
                    frame = Media(study_id=study.id, png=png(seed))
                    s.add(frame)
                    s.flush()
                    s.add(RevealFrame(item_id=item.id, step=step, percent=percent, media_id=frame.id))
    store.close()


def serve(db_path: str, port: int) -> None:
    """Run the app (the process the benchmark starts and kills)."""
    import uvicorn

    from netreveal.store import open_store
    from netreveal.web.app import create_app
    from netreveal.web.ratelimit import RateLimit

    store = open_store(db_path)
    # 50 players sign up from one loopback address: raise the per-address sign-up limit only
    app = create_app(store, rate_limit=RateLimit(signups=10_000, failed_logins=10_000))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The app in a subprocess; ``kill()`` sends SIGKILL to that process only."""

    def __init__(self, db_path: str, port: int):
        self.db_path, self.port, self.proc = db_path, port, None
        self.log_path = db_path + ".server.log"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve", self.db_path, str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    self._cpu_at_start = self._cpu(since_start=False)
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("server did not start")

    cpu_seconds = 0.0  # CPU time of the server processes that ended

    _cpu_at_start = 0.0

    def _cpu(self, since_start: bool = True) -> float:
        """CPU seconds (user + system) the running server process has used since it was ready."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0
        return used - self._cpu_at_start if since_start else used

    def kill(self) -> None:
        self.cpu_seconds += self._cpu()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.cpu_seconds += self._cpu()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- the players -----------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.retries = Counter()
        self.acks: dict[str, dict] = {}  # request_id -> acknowledgement
        self.acked = 0
        self.replayed = 0
        self.client_cpu = 0.0
        self.half = asyncio.Event()
        self.target_half = 0


class Player:
    def __init__(self, base: str, name: str, guesses: int, stats: Stats, rng: random.Random, think: float):
        import httpx

        self.name, self.left, self.stats, self.rng, self.think = name, guesses, stats, rng, think
        self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30.0))
        self.csrf = ""

    async def call(self, kind: str, method: str, url: str, body=None):
        """One logical request, retried (same body) on connection errors and 5xx until answered."""
        import httpx

        delay = 0.05
        while True:
            start = time.perf_counter()
            try:
                r = await self.http.request(method, url, json=body, headers={"X-CSRF-Token": self.csrf})
            except httpx.TransportError:
                self.stats.retries[kind] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            if r.status_code >= 500 or r.status_code == 429:
                self.stats.retries[kind] += 1
                await asyncio.sleep(float(r.headers.get("retry-after", delay)))
                delay = min(delay * 2, 0.5)
                continue
            self.stats.latency.setdefault(kind, []).append(time.perf_counter() - start)
            return r

    async def run(self, arrive: float) -> None:
        await asyncio.sleep(arrive)
        try:
            r = await self.call("session", "GET", "/api/session")
            self.csrf = r.json()["csrf_token"]
            r = await self.call("signup", "POST", "/api/signup", {"username": self.name, "password": "load-password"})
            if r.status_code == 409:  # the sign-up was stored but its answer lost in a crash: log in
                r = await self.call("login", "POST", "/api/login", {"username": self.name, "password": "load-password"})
            assert r.status_code in (200, 201), r.text
            self.csrf = r.json()["csrf_token"]
            while self.left > 0:
                await self.play_round()
        finally:
            await self.http.aclose()

    async def pause(self) -> None:
        """A player's time to look and type: uniform in [0, 2 * think] seconds."""
        if self.think:
            await asyncio.sleep(self.rng.uniform(0, 2 * self.think))

    async def play_round(self) -> None:
        r = await self.call("round", "POST", "/api/rounds")
        assert r.status_code == 200, r.text
        state = r.json()
        if self.rng.random() < 0.3:
            await self.pause()
            r = await self.call("reveal", "POST", f"/api/rounds/{state['game_id']}/reveal", {"from_step": state["step"]})
            assert r.status_code == 200, r.text
            state = r.json()
        while self.left > 0 and state["outcome"] is None:
            await self.pause()
            request_id = str(uuid.uuid4())
            body = {"request_id": request_id, "guessed_class": self.rng.choice(CLASSES),
                    "text": f"label {self.rng.randrange(1000)}", "language": "en", "step": state["step"]}
            r = await self.call("guess", "POST", f"/api/rounds/{state['game_id']}/guesses", body)
            if r.status_code == 409:  # the round moved on (a reveal answered during a crash): look again
                state = (await self.call("round", "GET", f"/api/rounds/{state['game_id']}")).json()
                continue
            assert r.status_code == 200, r.text
            ack = r.json()
            assert ack["request_id"] == request_id
            if r.headers.get("idempotent-replayed") == "true":
                self.stats.replayed += 1  # stored before a crash cut the answer off: acknowledged now
            self.stats.acks[request_id] = ack
            self.stats.acked += 1
            if self.stats.acked >= self.stats.target_half:
                self.stats.half.set()
            self.left -= 1
            state = {**state, "outcome": ack["outcome"], "step": ack["next_step"]}


# ---- the checks ------------------------------------------------------------------------------------

def check_database(db_path: str, acks: dict[str, dict]) -> dict[str, object]:
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT request_id, step, correct, game_id FROM guesses").fetchall()
        stored = Counter(r[0] for r in rows)
        by_id = {r[0]: r for r in rows}
        lost = [rid for rid in acks if rid not in stored]
        duplicated = [rid for rid, n in stored.items() if n > 1]
        unacknowledged = [rid for rid in stored if rid not in acks]
        mismatched = [rid for rid, a in acks.items() if rid in by_id and
                      (by_id[rid][1] != a["step"] or bool(by_id[rid][2]) != a["correct"] or by_id[rid][3] != a["game_id"])]
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        foreign = con.execute("PRAGMA foreign_key_check").fetchall()
        label_counts = con.execute(
            "SELECT COUNT(*) FROM items i WHERE i.label_count != (SELECT COUNT(*) FROM guesses g WHERE g.item_id = i.id)"
        ).fetchone()[0]
        bad_games = 0
        for game_id, step, outcome, points in con.execute("SELECT id, step, outcome, points FROM games"):
            guesses = con.execute("SELECT step, correct FROM guesses WHERE game_id = ? ORDER BY step", (game_id,)).fetchall()
            steps = [g[0] for g in guesses]
            wins = [g for g in guesses if g[1]]
            ok = len(set(steps)) == len(steps) and all(s <= step for s in steps) and 1 <= step <= STEPS
            if outcome == "win":
                ok &= len(wins) == 1 and wins[0][0] == step and points == POINTS[step - 1]
            elif outcome == "loss":
                ok &= not wins and steps[-1:] == [STEPS] and points == 0
            else:
                ok &= not wins and points == 0
            bad_games += not ok
        twice = con.execute("SELECT COUNT(*) FROM (SELECT player_id, item_id FROM games GROUP BY 1, 2 HAVING COUNT(*) > 1)"
                            ).fetchone()[0]
    finally:
        con.close()
    return {"stored": len(rows), "lost": len(lost), "duplicated": len(duplicated), "unacknowledged": len(unacknowledged),
            "mismatched": len(mismatched), "integrity": integrity, "fk_violations": len(foreign),
            "label_count_errors": label_counts, "inconsistent_rounds": bad_games, "item_twice": twice}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


async def run_players(args, base: str, server: Server) -> tuple[Stats, float, float | None]:
    stats = Stats()
    stats.target_half = args.players * args.guesses // 2
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:6]
    players = [Player(base, f"p{tag}_{i}", args.guesses, stats, random.Random(rng.random()), args.think)
               for i in range(args.players)]
    downtime = None

    async def killer():
        nonlocal downtime
        await stats.half.wait()
        t0 = time.perf_counter()
        server.kill()
        print(f"kill -9 server after {stats.acked} acknowledged guesses", file=sys.stderr)
        await asyncio.sleep(args.downtime)
        await asyncio.to_thread(server.start)
        downtime = time.perf_counter() - t0

    start = time.perf_counter()
    cpu0 = time.process_time()
    tasks = [asyncio.create_task(p.run(args.ramp * i / max(1, len(players)))) for i, p in enumerate(players)]
    kill_task = asyncio.create_task(killer()) if args.kill else None
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    stats.client_cpu = time.process_time() - cpu0
    if kill_task is not None:
        await kill_task
    return stats, wall, downtime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--guesses", type=int, default=20, help="guesses per player")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds a player takes before each guess or reveal, uniform in [0, 2*think] "
                             "(default 1; 0 = back-to-back requests, a capacity test)")
    parser.add_argument("--ramp", type=float, default=5.0,
                        help="seconds over which players arrive and sign up (default 5; 0 = all at once)")
    parser.add_argument("--kill", action="store_true", help="kill -9 the server halfway and restart it")
    parser.add_argument("--downtime", type=float, default=1.0, help="seconds the killed server stays down")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "load.db")
        build_study(db_path, args.images, args.layers)
        port = free_port()
        server = Server(db_path, port)
        server.start()
        try:
            stats, wall, downtime = asyncio.run(run_players(args, f"http://127.0.0.1:{port}", server))
        finally:
            server.stop()
            errors = Path(server.log_path).read_text(errors="replace").count("Traceback")
        checks = check_database(db_path, stats.acks)
        checks["server tracebacks"] = errors

    mode = "kill -9 + restart" if args.kill else "steady"
    guesses = stats.latency.get("guess", [])
    all_requests = [x for v in stats.latency.values() for x in v]
    print(f"\nreveal game load: {args.players} players x {args.guesses} guesses, SQLite, one uvicorn process, "
          f"{mode}, think {args.think:g} s, arrivals over {args.ramp:g} s\n")
    rows = []
    for kind in ("guess", "round", "reveal", "signup", "all"):
        values = all_requests if kind == "all" else stats.latency.get(kind, [])
        if not values:
            continue
        rows.append((kind, len(values), f"{1000 * statistics.fmean(values):.1f}", f"{1000 * percentile(values, 50):.1f}",
                     f"{1000 * percentile(values, 95):.1f}", f"{1000 * percentile(values, 99):.1f}",
                     f"{1000 * max(values):.1f}", stats.retries.get(kind, sum(stats.retries.values()) if kind == "all" else 0)))
    print(table(rows, ("request", "answered", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "retries")))
    print()
    summary = [
        ("wall time (s)", f"{wall:.2f}"),
        ("acknowledged guesses", stats.acked),
        ("acknowledged on a retry (replayed)", stats.replayed),
        ("guesses / s", f"{stats.acked / wall:.1f}"),
        ("requests / s", f"{len(all_requests) / wall:.1f}"),
        ("guess p95 ms (target < 200)", f"{1000 * percentile(guesses, 95):.1f}"),
        ("server CPU s (ms / request)", f"{server.cpu_seconds:.1f} ({1000 * server.cpu_seconds / len(all_requests):.1f})"),
        ("players' CPU s (same machine)", f"{stats.client_cpu:.1f}"),
        ("load average at start", f"{load_before:.1f} on {os.cpu_count()} cores"),
    ]
    if args.kill:
        summary.append(("server down (s, kill to ready)", f"{downtime:.2f}" if downtime else "n/a"))
    summary += [(f"db: {k}", v) for k, v in checks.items()]
    print(table(summary, ("measure", "value")))
    ok = (checks["lost"] == checks["duplicated"] == checks["unacknowledged"] == checks["mismatched"] == 0
          and checks["integrity"] == "ok" and checks["fk_violations"] == 0 and checks["label_count_errors"] == 0
          and checks["inconsistent_rounds"] == 0 and checks["item_twice"] == 0
          and stats.acked == args.players * args.guesses)
    print(f"\n{'OK' if ok else 'FAILED'}: every acknowledged guess stored exactly once, database consistent"
          if ok else "\nFAILED: see the table")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
