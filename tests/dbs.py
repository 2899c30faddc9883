"""Databases for tests: the same test over SQLite and PostgreSQL, and a tiny study without a model.

Use in a test file::

    from dbs import make_tiny_study, store, store_url  # noqa: F401  (pytest fixtures)

    def test_something(store):            # runs twice: [sqlite] and [postgresql]
        study_id = make_tiny_study(store)
        ...

- ``store_url``: the URL of a fresh, empty database for this test — an SQLite file in
  ``tmp_path``, or a new schema in the PostgreSQL database named by the environment variable
  ``NETREVEAL_TEST_POSTGRES_URL`` (dropped afterwards). Give it to ``open_store`` or to a
  subprocess (``--database-url``). Without the variable the PostgreSQL case is skipped, unless
  ``NETREVEAL_REQUIRE_POSTGRES=1``, which makes it fail instead (CI sets both:
  ``export NETREVEAL_TEST_POSTGRES_URL="$(.ci/postgres.sh)"``).
- ``store``: ``open_store(store_url)`` (schema at head), closed after the test.
- ``other_store``: a second empty store of the same backend, closed (and dropped) after the test.
- ``make_tiny_study(store, ...)``: inserts a study of synthetic images and maps with its items and
  reveal frames (fast: no model, no INV) and returns its id.
- ``write_lock(store_url)``: another connection holds a write lock meanwhile (``with`` block).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
import torch
from sqlalchemy.orm import Session

from netreveal.store import Store, open_store

POSTGRES_ENV = "NETREVEAL_TEST_POSTGRES_URL"
REQUIRE_ENV = "NETREVEAL_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


def postgres_base_url() -> str | None:
    """The PostgreSQL URL tests may use, or None (skip; fail when PostgreSQL is required)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set (run .ci/postgres.sh)")
    pytest.skip(f"{POSTGRES_ENV} is not set")
    return None


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_database(backend: str, folder) -> Iterator[str]:
    """URL of a new empty database of ``backend``: an SQLite file in ``folder`` (a name not used
    before), or a new PostgreSQL schema, dropped on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'store-{uuid.uuid4().hex[:8]}.db'}"
        return
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.exc import DBAPIError

    from netreveal.store.db import database_url

    base = database_url(postgres_base_url())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, poolclass=pool.NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except DBAPIError as exc:
        admin.dispose()
        pytest.fail(f"cannot reach the test PostgreSQL at {POSTGRES_ENV}: {exc}".splitlines()[0])
    try:
        yield _with_search_path(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> Iterator[str]:
    """URL of a fresh empty database: SQLite file, or a new PostgreSQL schema (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def other_store(store_url, tmp_path) -> Iterator[Store]:
    """A second empty store of the same backend as ``store`` (e.g. to import an export into)."""
    backend = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    with fresh_database(backend, tmp_path) as url:
        opened = open_store(url)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def store(store_url) -> Iterator[Store]:
    """An open store at ``store_url`` with the current schema."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


TINY_CLASSES = ("cat", "dog", "fox")
TINY_LAYERS = ("block1", "block2", "block3")  # maps of 16x16, 8x8, 4x4 on 32x32 images


def make_tiny_study(
    store: Store,
    n_images: int = 3,
    *,
    name: str = "tiny",
    classes: Sequence[str] = TINY_CLASSES,
    layers: Sequence[str] = TINY_LAYERS,
    clusters: int = 2,
    size: int = 32,
    seed: int = 0,
    chunk: int = 256,
) -> int:
    """Insert a study of ``n_images`` random ``size`` px images; per image and layer ``clusters``
    items whose low-resolution map (side ``size / 2**(depth+1)``) is a bright blob at a seeded
    place, with reveal frames. Image i is predicted as ``classes[i % len(classes)]``. Returns the
    study id. ``chunk``: images or items stored per transaction."""
    from netreveal.studies.builder import ItemSpec, StudyBuilder

    gen = torch.Generator().manual_seed(seed)
    params = {"method": "synthetic", "seed": seed, "input_size": [size, size]}
    with StudyBuilder(name, model='{"model": "synthetic"}', classes=classes, layers=layers,
                      params=params) as builder:
        for i in range(n_images):
            picture = torch.rand(3, size, size, generator=gen)
            cls = classes[i % len(classes)]
            index = builder.add_image(f"{cls}-{i:03d}", picture, cls, 0.5 + 0.5 * (i % 2), true_class=cls)
            specs = []
            for depth, layer in enumerate(layers):
                side = max(1, size >> (depth + 1))
                for c in range(clusters):
                    low = _blob(side, gen)
                    full = torch.nn.functional.interpolate(low[None, None], size=(size, size), mode="bilinear",
                                                           align_corners=False)[0, 0]
                    specs.append(ItemSpec(image=index, picture=picture, layer=layer, cluster=c,
                                          weight=60.0 / (c + 1), channels=[c, c + clusters], map=full, low=low))
            builder.add_items(specs)
        return builder.write(store, chunk=chunk)


def _blob(side: int, gen: torch.Generator) -> torch.Tensor:
    cy, cx = (torch.rand(2, generator=gen) * side).tolist()
    y = torch.arange(side, dtype=torch.float32)[:, None]
    x = torch.arange(side, dtype=torch.float32)[None, :]
    blob = torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * max(1.0, side / 4) ** 2))
    return (blob - blob.min()) / (blob.max() - blob.min()).clamp_min(1e-6)


def row_counts(where: Store | str | Session) -> dict[str, int]:
    """Rows in every table of the schema: of an open session, a store, or the store at a URL."""
    from sqlalchemy import func, select

    from netreveal.store.models import Base

    def count(session: Session) -> dict[str, int]:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}

    if isinstance(where, Session):
        return count(where)
    opened = open_store(where) if isinstance(where, str) else where
    try:
        with opened.session() as session:
            return count(session)
    finally:
        if opened is not where:
            opened.close()


@contextmanager
def write_lock(store_url: str, release_after: float = 20.0):
    """Another connection holding a write lock on the accounts (released after ``release_after`` s
    at the latest, so a server that waits without limit still ends)."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None,
                               check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, for the whole database
        release = conn.rollback
    else:
        from sqlalchemy import create_engine, pool, text

        engine = create_engine(store_url, poolclass=pool.NullPool)
        conn = engine.connect()
        conn.begin()
        conn.execute(text("LOCK TABLE accounts IN EXCLUSIVE MODE"))  # reads pass, writes wait

        def release():
            conn.rollback()
    timer = threading.Timer(release_after, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        release()
        conn.close()
