"""How long the web app's ``/explanations`` page takes: first load in a fresh process, the loads
after it, after a new label, in a second app on the same database (a restarted server), and in a
third one prepared in the background as ``netreveal serve`` starts it.

Study: ``--images`` held-out parts-world images with INV on the demo model (``--layers``, default
the demo's nine layers), every kept cluster map an item, labelled by the simulated crowd at 20 %
noise (as ``netreveal demo`` then ``netreveal labels crowd`` would make it), in a scratch SQLite
file. Requests go through FastAPI's test client as a logged-in annotator; times are wall seconds.

    python benchmarks/explanations_page.py [--images 3] [--layers auto:9] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_study(path: Path, images: int, layers: str) -> None:
    """The labelled demo-like study "demo" in a new SQLite file ``path``."""
    from netreveal import pipeline
    from netreveal.data.crowd import CrowdConfig
    from netreveal.data.partsworld_truth import partsworld_inputs
    from netreveal.inv import explain_inv
    from netreveal.labels.crowd_study import label_study_with_crowd
    from netreveal.model.adapter import load_model
    from netreveal.store import open_store
    from netreveal.studies.inv_study import create_study_from_inv

    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, images)
    result = explain_inv(adapter.model, inputs.images, layers, seed=0)
    probs = pipeline.predict(adapter, inputs.images, 8)
    store = open_store(path)
    try:
        create_study_from_inv(store, "demo", adapter, inputs, result, probs)
        label_study_with_crowd(store, "demo", CrowdConfig.noisy(0.2, seed=0))
    finally:
        store.close()


def client_for(path: Path):
    """A test client of a new app on the study, logged in as an annotator (created once)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from netreveal.store import accounts, open_store
    from netreveal.store.models import Account
    from netreveal.web.app import create_app
    from netreveal.web.deps import SESSION_COOKIE

    store = open_store(path)
    with store.session() as s:
        ann = s.scalar(select(Account).where(Account.username == "bench-annotator"))
        if ann is None:
            ann = Account(username="bench-annotator", password_hash="x", role="annotator")
            s.add(ann)
            s.flush()
        token, _ = accounts.start_session(s, ann)
    client = TestClient(create_app(store, "demo", rate_limit=None))
    client.cookies.set(SESSION_COOKIE, token)
    return client, store


def add_label(store, text: str) -> None:
    """One more crowd-style label on the study's first item (as the game stores a guess)."""
    from sqlalchemy import select

    from netreveal.store.label_writes import insert_guesses
    from netreveal.store.models import Account, Item

    with store.session() as s:
        item = s.scalars(select(Item).order_by(Item.id)).first()
        player = s.scalar(select(Account).where(Account.username == "bench-annotator"))
        insert_guesses(s, [{"item_id": item.id, "player_id": player.id, "player_name": player.username, "step": 2,
                            "guessed_class": None, "text": text, "correct": False, "source": "import",
                            "request_id": f"bench-{text}"}])


def get(client, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--layers", default="auto:9")
    parser.add_argument("--repeat", type=int, default=3, help="warm loads to time (median printed)")
    args = parser.parse_args()
    from netreveal.web import explanations
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "explanations.db"
        start = time.perf_counter()
        build_study(path, args.images, args.layers)
        print(f"study built in {time.perf_counter() - start:.1f} s ({args.images} images, layers {args.layers})")
        client, store = client_for(path)
        rows = [("first load (fresh process)", get(client, "/explanations"))]
        rows.append(("later loads (median)", statistics.median(get(client, "/explanations")
                                                             for _ in range(args.repeat))))
        rows.append(("an image's page", get(client, "/explanations/images/1")))
        add_label(store, "wheel")
        rows.append(("after one new label", get(client, "/explanations")))
        rows.append(("and again", get(client, "/explanations")))
        client.close()
        store.close()
        client, store = client_for(path)
        rows.append(("second app, same database (restart)", get(client, "/explanations")))
        client.close()
        store.close()
        client, store = client_for(path)
        warm = getattr(explanations, "warm_up", None)
        if warm is not None:  # as `netreveal serve` starts: prepared in the background
            start = time.perf_counter()
            warm(client.app).join()
            rows.append(("third app: warm-up at start (background)", time.perf_counter() - start))
            rows.append(("third app: first load after the warm-up", get(client, "/explanations")))
        client.close()
        store.close()
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.3f} s")


if __name__ == "__main__":
    main()
