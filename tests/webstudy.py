"""A tiny reveal study for the web app tests: real PNGs, items with six reveal frames each."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time

from PIL import Image

from netreveal.store.models import REVEAL_PERCENTS, Item, Media, RevealFrame, Study, StudyImage

CLASSES = ["cat", "dog", "fish"]
# image key -> (true class, predicted class); each image gets one item per layer
IMAGES = {"img0": ("cat", "cat"), "img1": ("dog", "cat"), "img2": ("fish", "fish")}
LAYERS = ["block1", "block2"]
PASSWORD = "plum-kettle-42"  # a password the account rules accept (not common, no user name in it)


def png(seed: int, size: int = 16, grey: bool = False) -> bytes:
    """A small PNG whose colour depends on ``seed``."""
    mode = "L" if grey else "RGB"
    colour = (seed * 37) % 256 if grey else ((seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256)
    out = io.BytesIO()
    Image.new(mode, (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def make_web_study(store, name: str = "tiny", images: dict | None = None, layers: list | None = None) -> dict:
    """Insert a study with one item per (image, layer) and six reveal frames per item.

    Returns ids: {"study", "items": [item ids], "answer": {item_id: class}, "frames": {item_id: [media ids]},
    "image_media": {item_id: media id}, "map_media": {item_id: media id}}.
    """
    images = images or IMAGES
    layers = layers or LAYERS
    seed = 0
    with store.session() as s:
        study = Study(name=name, model="tiny", classes=list(CLASSES), layers=list(layers), params={})
        s.add(study)
        s.flush()
        ids = {"study": study.id, "items": [], "answer": {}, "frames": {}, "image_media": {}, "map_media": {}}
        for key, (true_class, predicted) in images.items():
            seed += 1
            media = Media(study_id=study.id, png=png(seed))
            s.add(media)
            s.flush()
            image = StudyImage(study_id=study.id, key=key, true_class=true_class, predicted_class=predicted,
                               probability=0.8, media_id=media.id)
            s.add(image)
            s.flush()
            for depth, layer in enumerate(layers):
                seed += 1
                map_media = Media(study_id=study.id, png=png(seed, grey=True))
                s.add(map_media)
                s.flush()
                item = Item(study_id=study.id, image_id=image.id, layer=layer, depth=depth, cluster=0,
                            weight=50.0, channels=[0, 1], map_media_id=map_media.id)
                s.add(item)
                s.flush()
                frames = []
                for step, percent in enumerate(REVEAL_PERCENTS, start=1):
                    seed += 1
                    frame_media = Media(study_id=study.id, png=png(seed))
                    s.add(frame_media)
                    s.flush()
                    s.add(RevealFrame(item_id=item.id, step=step, percent=percent, media_id=frame_media.id))
                    frames.append(frame_media.id)
                ids["items"].append(item.id)
                ids["answer"][item.id] = true_class
                ids["frames"][item.id] = frames
                ids["image_media"][item.id] = media.id
                ids["map_media"][item.id] = map_media.id
        return ids


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The app under uvicorn in a background thread on a free loopback port (``with LiveServer(app) as url``)."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Served:
    """``netreveal serve`` in a subprocess on a free loopback port (stopped with SIGINT after)."""

    def __init__(self, database: str, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "netreveal.cli", "serve", "--database-url", database,
                     "--port", str(self.port), *extra]

    def __enter__(self) -> Served:  # noqa: PYI034  (Python 3.10 has no typing.Self)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "FORWARDED_ALLOW_IPS": "*"})  # must not matter
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"netreveal serve exited: {self.proc.communicate()[1]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()

    def signup(self, username: str, headers: dict[str, str] | None = None):
        """A new visitor (own cookies, a new connection) signing up, every request carrying ``headers``."""
        return self._visit("/api/signup", {"username": username, "password": PASSWORD}, headers)

    def login(self, username: str, password: str = PASSWORD, headers: dict[str, str] | None = None):
        """A new visitor (own cookies, a new connection) logging in."""
        return self._visit("/api/login", {"username": username, "password": password}, headers)

    def _visit(self, path: str, body: dict, headers: dict[str, str] | None):
        import httpx

        with httpx.Client(base_url=self.url, headers=headers or {}, timeout=30) as http:
            csrf = http.get("/api/session").json()["csrf_token"]
            return http.post(path, json=body, headers={"X-CSRF-Token": csrf})


def raw_get(port: int, raw_path: str) -> int:
    """The status of ``GET raw_path`` sent byte for byte (no client-side path normalisation)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def make_account(store, username: str, role: str = "player", password: str = PASSWORD):
    """Add an account directly in the store (how annotators and admins come to exist in tests)."""
    from netreveal.store import accounts

    with store.session() as s:
        return accounts.create_account(s, username, password, role=role)


class Client:
    """A TestClient that keeps the CSRF token of its session and sends it with state-changing calls."""

    def __init__(self, app):
        from fastapi.testclient import TestClient

        self.http = TestClient(app)
        self.csrf = self.http.get("/api/session").json()["csrf_token"]

    def signup(self, username: str, password: str = PASSWORD, role: str = "player"):
        r = self.post("/api/signup", {"username": username, "password": password, "role": role})
        if r.status_code == 201:
            self.csrf = r.json()["csrf_token"]
        return r

    def login(self, username: str, password: str = PASSWORD):
        r = self.post("/api/login", {"username": username, "password": password})
        if r.status_code == 200:
            self.csrf = r.json()["csrf_token"]
        return r

    def get(self, url: str, **kw):
        return self.http.get(url, **kw)

    def post(self, url: str, body=None, **kw):
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.http.post(url, json=body, headers=headers, **kw)

    def start(self):
        r = self.post("/api/rounds")
        assert r.status_code == 200, r.text
        return r.json()

    def guess(self, game_id: int, guessed_class: str, text: str = "something", request_id: str | None = None, **extra):
        import uuid

        body = {"request_id": request_id or str(uuid.uuid4()), "guessed_class": guessed_class, "text": text, **extra}
        return self.post(f"/api/rounds/{game_id}/guesses", body)


def counts(store) -> dict:
    """Rows per table that requests may write."""
    from sqlalchemy import func, select

    from netreveal.store.models import Account, Concept, Game, Guess, Item, WebSession

    with store.session() as s:
        return {
            "accounts": s.scalar(select(func.count()).select_from(Account)),
            "sessions": s.scalar(select(func.count()).select_from(WebSession)),
            "games": s.scalar(select(func.count()).select_from(Game)),
            "guesses": s.scalar(select(func.count()).select_from(Guess)),
            "concepts": s.scalar(select(func.count()).select_from(Concept)),
            "labels": s.scalar(select(func.sum(Item.label_count))) or 0,
            "roles": tuple(s.execute(select(Account.username, Account.role).order_by(Account.id)).all()),
            "steps": tuple(s.execute(select(Game.id, Game.step, Game.outcome).order_by(Game.id)).all()),
        }


def build_template(path) -> dict:
    """Create a migrated database holding the tiny study at ``path`` (copied per test: migrations are slow)."""
    from netreveal.store import open_store

    store = open_store(path)
    try:
        return make_web_study(store)
    finally:
        store.close()


def copy_store(template, dest):
    """Open a copy of the template database at ``dest``."""
    import shutil
    from pathlib import Path

    from netreveal.store import open_store

    for suffix in ("", "-wal", "-shm"):
        source = Path(str(template) + suffix)
        if source.exists():
            shutil.copy(source, str(dest) + suffix)
    return open_store(dest)


def study_ids(store, study_id: int) -> dict:
    """The ids :func:`make_web_study` returns, read back for any study (e.g. ``dbs.make_tiny_study``'s)."""
    from sqlalchemy import select

    from netreveal.store.models import Item, RevealFrame, StudyImage

    ids = {"study": study_id, "items": [], "answer": {}, "frames": {}, "image_media": {}, "map_media": {}}
    with store.session() as s:
        rows = s.execute(select(Item.id, Item.map_media_id, StudyImage.media_id, StudyImage.true_class,
                                StudyImage.predicted_class)
                         .join(StudyImage, StudyImage.id == Item.image_id)
                         .where(Item.study_id == study_id).order_by(Item.id)).all()
        for item_id, map_media, image_media, true_class, predicted in rows:
            ids["items"].append(item_id)
            ids["answer"][item_id] = true_class or predicted
            ids["image_media"][item_id] = image_media
            ids["map_media"][item_id] = map_media
            ids["frames"][item_id] = list(s.scalars(select(RevealFrame.media_id).where(RevealFrame.item_id == item_id)
                                                    .order_by(RevealFrame.step)))
    return ids
