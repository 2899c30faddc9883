"""Load on the reveal game over HTTP: concurrent players, guess latency, and no guess lost or stored twice.

Starts ``netreveal serve --workers N`` in a subprocess (SQLite file in a temporary folder, or a
schema of its own in the PostgreSQL database given by ``--database-url``, dropped afterwards; a
small study; the default rate limits, each player with a client address of its own as a reverse
proxy on loopback would forward it), then runs simulated players on loopback. First every player signs up (argon2 runs
then: the sign-ups arrive over ``--ramp`` seconds and are reported apart); once all have signed up
the measured phase starts: each player plays rounds (sometimes asking to see more) and posts guesses
with client-generated request ids, retrying on connection errors, 429 and server errors with the
same request id until acknowledged. It prints latency per kind of request, why clients retried
(connection refused, timeout, connection lost, 429, 5xx), then checks the database: every
acknowledged guess is stored exactly once (by request id, with the acknowledged step and
correctness), nothing unacknowledged is stored, item label counts and round outcomes agree with the
guesses, and (SQLite) the integrity and foreign-key checks pass.

The players talk HTTP/1.1 with a small keep-alive client (``benchmarks/lean_http.py``) by default:
they run on the server's machine, and httpx's CPU per request (about 2.5 ms here, near the server's
own) would take cores the server needs. ``--client httpx`` uses httpx instead; the report prints the
players' CPU either way.

``--kill``: when half of all guesses are acknowledged the server gets SIGKILL (every process of it),
stays down for ``--downtime`` seconds and is started again on the same database; players keep retrying.
``--kill worker`` (with ``--workers 2`` or more) kills one worker process only: the others keep
serving and uvicorn starts a new one.

    python benchmarks/load_game.py                 # 50 players x 20 guesses, ~1 s per move
    python benchmarks/load_game.py --players 200 --kill --database-url postgresql+psycopg://u:p@127.0.0.1/db
    python benchmarks/load_game.py --players 200 --workers 2 --kill worker
    python benchmarks/load_game.py --think 0       # back-to-back requests: the server's capacity

Players take ``--think`` seconds on average before each guess or reveal (people need longer to look
and type: 1 s is a fast player). With ``--think 0`` every player has a request in flight at all
times, so latency is players / throughput (Little's law) and measures capacity, not responsiveness.
The run stops after ``--max-seconds`` whatever happens (then it reports FAILED).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from game_db import CLASSES, backend_name, build_study, check_database, scratch_database
from lean_http import ConnectionLost, LeanClient

# ---- the server ----------------------------------------------------------------------------------

def serve_command(url: str, port: int, workers: int) -> list[str]:
    """``netreveal serve`` as people run it, ``workers`` processes; behind a proxy on loopback, so each
    player's ``X-Forwarded-For`` is its own address (the per-address sign-up limit is per player)."""
    return [sys.executable, "-m", "netreveal.cli", "serve", "--database-url", url, "--port", str(port),
            "--workers", str(workers), "--forwarded-allow-ips", "127.0.0.1"]


def player_address(index: int) -> str:
    """The client address of player ``index`` (as a proxy would forward it)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The app in a subprocess group of its own; ``kill()`` sends SIGKILL to that group only."""

    def __init__(self, url: str, port: int, workers: int, log_path: str):
        self.url, self.port, self.workers, self.proc = url, port, workers, None
        self.log_path = log_path
        self.cpu_seconds = 0.0  # CPU time of the server processes that ended
        self._cpu_at_start = 0.0

    def start(self) -> None:
        """Start the server; return once it answers HTTP (every worker may not be up yet)."""
        import httpx

        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(serve_command(self.url, self.port, self.workers),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with code {self.proc.returncode}: see {self.log_path}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/api/session", timeout=2.0)
                self._cpu_at_start = self._cpu(since_start=False)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise SystemExit("server did not start")

    def workers_pids(self) -> list[int]:
        """The worker processes of a ``--workers N`` server (N > 1)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if (int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid
                        and b"spawn_main" in (stat.parent / "cmdline").read_bytes()):
                    found.append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
        return sorted(found)

    def kill_worker(self) -> int:
        """SIGKILL one worker process (its supervisor starts another); its pid."""
        pid = self.workers_pids()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        self._cpu_at_start -= (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # keep its CPU counted
        os.kill(pid, signal.SIGKILL)
        return pid

    def _cpu(self, since_start: bool = True) -> float:
        """CPU seconds (user + system) the server's processes have used since it was ready."""
        used = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:  # its process group: the server and its workers
                    used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
        return used - self._cpu_at_start if since_start else used

    def kill(self) -> None:
        self.cpu_seconds += self._cpu()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.cpu_seconds += self._cpu()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---- the players -----------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.retries: Counter[tuple[str, str]] = Counter()  # (request kind, reason)
        self.acks: dict[str, dict] = {}  # request_id -> acknowledgement
        self.acked = 0
        self.replayed = 0
        self.half = asyncio.Event()
        self.target_half = 0


def transport_reason(error: Exception) -> str:
    """Why a request got no answer, as the retry table names it."""
    import httpx

    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionLost):
        return "connection lost"
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        cause = error
        while cause is not None and not isinstance(cause, ConnectionRefusedError):
            cause = cause.__cause__ or cause.__context__
        return "connection refused" if cause is not None else "connect error"
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "connection lost"
    return type(error).__name__


class Player:
    def __init__(self, base: str, name: str, guesses: int, stats: Stats, rng: random.Random, think: float,
                 address: str, client: str = "lean"):
        import httpx

        self.name, self.left, self.stats, self.rng, self.think = name, guesses, stats, rng, think
        if client == "httpx":
            self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30.0),
                                          headers={"X-Forwarded-For": address})
        else:
            host, port = base.removeprefix("http://").rsplit(":", 1)
            self.http = LeanClient(host, int(port), headers={"X-Forwarded-For": address}, timeout=30.0)
        self.csrf = ""

    async def call(self, kind: str, method: str, url: str, body=None):
        """One logical request, retried (same body) on connection errors, 429 and 5xx until answered."""
        import httpx

        delay = 0.05
        while True:
            start = time.perf_counter()
            try:
                r = await self.http.request(method, url, json=body, headers={"X-CSRF-Token": self.csrf})
            except (httpx.TransportError, OSError, TimeoutError) as error:
                self.stats.retries[kind, transport_reason(error)] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            if r.status_code >= 500 or r.status_code == 429:
                self.stats.retries[kind, str(r.status_code)] += 1
                await asyncio.sleep(float(r.headers.get("retry-after", delay)))
                delay = min(delay * 2, 0.5)
                continue
            self.stats.latency.setdefault(kind, []).append(time.perf_counter() - start)
            return r

    async def sign_up(self, arrive: float) -> None:
        await asyncio.sleep(arrive)
        r = await self.call("session", "GET", "/api/session")
        self.csrf = r.json()["csrf_token"]
        r = await self.call("signup", "POST", "/api/signup", {"username": self.name, "password": "load-password"})
        if r.status_code == 409:  # the sign-up was stored but its answer lost: log in
            r = await self.call("login", "POST", "/api/login", {"username": self.name, "password": "load-password"})
        assert r.status_code in (200, 201), r.text
        self.csrf = r.json()["csrf_token"]

    async def play(self) -> None:
        try:
            await self.pause()  # players do not all start at the same instant
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
            r = await self.call("reveal", "POST", f"/api/rounds/{state['game_id']}/reveal",
                                {"from_step": state["step"]})
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


# ---- the report ------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    def line(r) -> str:
        return "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


class Run:
    """What one run measured: the sign-up phase apart, then the measured phase."""

    def __init__(self):
        self.stats = Stats()
        self.signup_wall = self.wall = 0.0
        self.client_cpu = 0.0
        self.downtime: float | None = None
        self.server_cpu_signup = 0.0


async def run_players(args, base: str, server: Server) -> Run:
    run = Run()
    stats = run.stats
    stats.target_half = args.players * args.guesses // 2
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:6]
    players = [Player(base, f"p{tag}_{i}", args.guesses, stats, random.Random(rng.random()), args.think,
                      player_address(i), args.client) for i in range(args.players)]
    start = time.perf_counter()
    await asyncio.gather(*(p.sign_up(args.ramp * i / max(1, len(players))) for i, p in enumerate(players)))
    run.signup_wall = time.perf_counter() - start
    run.server_cpu_signup = server._cpu()
    signup_latency = {k: stats.latency.pop(k) for k in ("session", "signup", "login") if k in stats.latency}

    async def killer():
        await stats.half.wait()
        if args.kill == "worker":
            pid = server.kill_worker()
            print(f"kill -9 worker process {pid} after {stats.acked} acknowledged guesses", file=sys.stderr)
            return
        t0 = time.perf_counter()
        server.kill()
        print(f"kill -9 server after {stats.acked} acknowledged guesses", file=sys.stderr)
        await asyncio.sleep(args.downtime)
        await asyncio.to_thread(server.start)
        run.downtime = time.perf_counter() - t0

    start = time.perf_counter()
    cpu0 = time.process_time()
    kill_task = asyncio.create_task(killer()) if args.kill else None
    await asyncio.gather(*(p.play() for p in players))
    run.wall = time.perf_counter() - start
    run.client_cpu = time.process_time() - cpu0
    if kill_task is not None:
        await kill_task
    stats.latency.update({f"{k} (before)": v for k, v in signup_latency.items()})
    return run


def report(args, url: str, run: Run, server: Server, checks: dict, load_before: float) -> bool:
    stats = run.stats
    mode = {"server": "kill -9 + restart", "worker": "kill -9 of one worker"}.get(args.kill, "steady")
    processes = f"netreveal serve --workers {args.workers}"
    print(f"\nreveal game load: {args.players} players x {args.guesses} guesses, {backend_name(url)}, {processes}, "
          f"{mode}, think {args.think:g} s; sign-ups over {args.ramp:g} s before the measured phase; "
          f"players' HTTP client: {args.client}\n")
    measured = [x for k in ("guess", "round", "reveal") for x in stats.latency.get(k, [])]
    rows = []
    for kind in ("guess", "round", "reveal", "all measured", "signup (before)"):
        values = measured if kind == "all measured" else stats.latency.get(kind, [])
        if not values:
            continue
        retries = sum(n for (k, _), n in stats.retries.items() if k == kind or (kind == "all measured" and
                                                                                 k in ("guess", "round", "reveal")))
        rows.append((kind, len(values), f"{1000 * statistics.fmean(values):.1f}",
                     f"{1000 * percentile(values, 50):.1f}",
                     f"{1000 * percentile(values, 95):.1f}", f"{1000 * percentile(values, 99):.1f}",
                     f"{1000 * max(values):.1f}", retries))
    print(table(rows, ("request", "answered", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "retries")))
    reasons = Counter()
    for (_, reason), n in stats.retries.items():
        reasons[reason] += n
    print("\nretries by reason: " + (", ".join(f"{reason} {n}" for reason, n in reasons.most_common()) or "none"))
    guesses = stats.latency.get("guess", [])
    measured_cpu = server.cpu_seconds - run.server_cpu_signup
    summary = [
        ("measured phase wall time (s)", f"{run.wall:.2f}"),
        ("sign-up phase wall time (s)", f"{run.signup_wall:.2f}"),
        ("acknowledged guesses", stats.acked),
        ("acknowledged on a retry (replayed)", stats.replayed),
        ("guesses / s", f"{stats.acked / run.wall:.1f}"),
        ("requests / s (measured)", f"{len(measured) / run.wall:.1f}"),
        ("guess p95 ms (target < 300)", f"{1000 * percentile(guesses, 95):.1f}"),
        ("server CPU s, measured phase (ms / request)",
         f"{measured_cpu:.1f} ({1000 * measured_cpu / max(1, len(measured)):.1f})"),
        ("players' CPU s, measured phase (same machine)", f"{run.client_cpu:.1f}"),
        ("load average at start", f"{load_before:.1f} on {os.cpu_count()} cores"),
    ]
    if args.kill == "server":
        summary.append(("server down (s, kill to ready)", f"{run.downtime:.2f}" if run.downtime else "n/a"))
    summary += [(f"db: {k}", v) for k, v in checks.items()]
    print(table(summary, ("measure", "value")))
    ok = (checks["lost"] == checks["duplicated"] == checks["unacknowledged"] == checks["mismatched"] == 0
          and str(checks["integrity"]).startswith("ok") and checks["fk_violations"] == 0
          and checks["label_count_errors"] == 0 and checks["inconsistent_rounds"] == 0 and checks["item_twice"] == 0
          and stats.acked == args.players * args.guesses)
    print("\nOK: every acknowledged guess stored exactly once, database consistent" if ok
          else "\nFAILED: see the table")
    return ok


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
                        help="seconds over which players arrive and sign up, before the measured phase (default 5)")
    parser.add_argument("--database-url", help="a PostgreSQL database to run in (a schema of its own, dropped "
                                               "afterwards); default: SQLite in a temporary folder")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes: netreveal serve --workers N (default 1)")
    parser.add_argument("--kill", nargs="?", const="server", choices=["server", "worker"],
                        help="halfway: kill -9 the server (every process) and restart it; "
                             "--kill worker: kill -9 one worker process (with --workers 2 or more)")
    parser.add_argument("--downtime", type=float, default=1.0, help="seconds the killed server stays down")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop (FAILED) after this long (default 600)")
    parser.add_argument("--client", choices=["lean", "httpx"], default="lean",
                        help="the players' HTTP client: lean (benchmarks/lean_http.py, about a sixth of httpx's "
                             "CPU per request, so the players take fewer of the cores the server runs on) or "
                             "httpx (default lean)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.kill == "worker" and args.workers < 2:
        parser.error("--kill worker needs --workers 2 or more")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, tmp) as url:
        build_study(url, args.images, args.layers)
        port = free_port()
        server = Server(url, port, args.workers, str(Path(tmp) / "server.log"))
        server.start()
        try:
            run = asyncio.run(asyncio.wait_for(run_players(args, f"http://127.0.0.1:{port}", server), args.max_seconds))
        except TimeoutError:
            print(f"\nFAILED: the run did not finish within {args.max_seconds:g} s")
            return 1
        finally:
            server.stop()
            errors = Path(server.log_path).read_text(errors="replace").count("Traceback")
        checks = check_database(url, run.stats.acks)
        checks["server tracebacks"] = errors
    return 0 if report(args, url, run, server, checks, load_before) else 1


if __name__ == "__main__":
    sys.exit(main())
