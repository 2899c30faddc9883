"""The database side of the reveal-game benchmarks: a scratch database, a synthetic study, and the
checks that no guess was lost or stored twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLASSES = ["cat", "dog", "fish", "bird"]
STEPS = 6
POINTS = (100, 70, 50, 35, 20, 10)


@contextmanager
def scratch_database(url: str | None, folder: str) -> Iterator[str]:
    """A URL of an empty database for one run: an SQLite file in ``folder`` (``url`` None), or a new
    schema in the PostgreSQL database ``url``, dropped with everything in it on exit."""
    if not url:
        yield f"sqlite:///{Path(folder) / 'load.db'}"
        return
    from sqlalchemy import create_engine, pool, text

    from netreveal.store.db import database_url

    base = database_url(url)
    if not base.startswith("postgresql"):
        raise SystemExit("--database-url: give a PostgreSQL URL (SQLite runs in a temporary file by default)")
    schema = f"netreveal_load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, poolclass=pool.NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def backend_name(url: str) -> str:
    return "SQLite" if url.startswith("sqlite") else "PostgreSQL"


def build_study(url: str, images: int, layers: int) -> None:
    """A study with ``images`` x ``layers`` items, six reveal frames each (small PNGs)."""
    from PIL import Image

    from netreveal.store import open_store
    from netreveal.store.models import REVEAL_PERCENTS, Item, Media, RevealFrame, Study, StudyImage

    def png(seed: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (32, 32), ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)).save(out, "PNG")
        return out.getvalue()

    store = open_store(url)
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


def check_database(url: str, acks: dict[str, dict]) -> dict[str, object]:
    """Every acknowledged guess stored once with what was acknowledged, nothing else stored, label
    counts and rounds consistent with the guesses; SQLite's integrity and foreign-key checks."""
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as con:
            rows = con.execute(text("SELECT request_id, step, correct, game_id FROM guesses")).all()
            label_counts = con.execute(text(
                "SELECT COUNT(*) FROM items i WHERE i.label_count != (SELECT COUNT(*) FROM guesses g "
                "WHERE g.item_id = i.id)")).scalar_one()
            guesses_of: dict[int, list[tuple[int, bool]]] = {}
            for game_id, step, correct in con.execute(text(
                    "SELECT game_id, step, correct FROM guesses ORDER BY game_id, step")):
                guesses_of.setdefault(game_id, []).append((step, bool(correct)))
            games = con.execute(text("SELECT id, step, outcome, points FROM games")).all()
            twice = con.execute(text("SELECT COUNT(*) FROM (SELECT player_id, item_id FROM games GROUP BY "
                                     "player_id, item_id HAVING COUNT(*) > 1) AS t")).scalar_one()
            if url.startswith("sqlite"):
                integrity = con.exec_driver_sql("PRAGMA integrity_check").scalar_one()
                foreign = len(con.exec_driver_sql("PRAGMA foreign_key_check").all())
            else:
                integrity, foreign = "ok (PostgreSQL)", 0  # PostgreSQL enforces its foreign keys itself
    finally:
        engine.dispose()
    stored = Counter(r[0] for r in rows)
    by_id = {r[0]: r for r in rows}
    mismatched = [rid for rid, a in acks.items() if rid in by_id and
                  (by_id[rid][1] != a["step"] or bool(by_id[rid][2]) != a["correct"] or by_id[rid][3] != a["game_id"])]
    bad_games = sum(not _round_consistent(step, outcome, points, guesses_of.get(game_id, []))
                    for game_id, step, outcome, points in games)
    return {"stored": len(rows), "lost": sum(rid not in stored for rid in acks),
            "duplicated": sum(n > 1 for n in stored.values()), "unacknowledged": sum(rid not in acks for rid in stored),
            "mismatched": len(mismatched), "integrity": integrity, "fk_violations": foreign,
            "label_count_errors": label_counts, "inconsistent_rounds": bad_games, "item_twice": twice}


def _round_consistent(step: int, outcome: str | None, points: int, guesses: list[tuple[int, bool]]) -> bool:
    steps = [s for s, _ in guesses]
    wins = [s for s, correct in guesses if correct]
    ok = len(set(steps)) == len(steps) and all(s <= step for s in steps) and 1 <= step <= STEPS
    if outcome == "win":
        return ok and wins == [step] and points == POINTS[step - 1]
    if outcome == "loss":
        return ok and not wins and steps[-1:] == [STEPS] and points == 0
    return ok and not wins and points == 0
