"""Label embeddings kept in the ``embeddings`` table, keyed by (model id, text), as raw bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select

from netreveal.store.db import Store
from netreveal.store.models import Embedding


def stored_vectors(store: Store, texts: Iterable[str], model: str, chunk: int = 500) -> dict[str, bytes]:
    """The stored vector bytes of ``texts`` for ``model`` (texts without one are left out)."""
    wanted = sorted(set(texts))
    out: dict[str, bytes] = {}
    with store.session() as session:
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            query = select(Embedding.text, Embedding.vector).where(Embedding.model == model, Embedding.text.in_(part))
            out.update((text, vector) for text, vector in session.execute(query))
    return out


def store_vectors(store: Store, rows: Sequence[dict], chunk: int = 500) -> None:
    """Insert or replace rows ``{"model", "text", "vector"}`` (an upsert on SQLite and PostgreSQL)."""
    if not rows:
        return
    dialect = store.engine.dialect.name
    with store.session() as session:
        for start in range(0, len(rows), chunk):
            part = list(rows[start : start + chunk])
            if dialect in ("sqlite", "postgresql"):
                module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
                stmt = module.insert(Embedding).values(part)
                stmt = stmt.on_conflict_do_update(index_elements=["model", "text"],
                                                  set_={"vector": stmt.excluded.vector})
                session.execute(stmt)
            else:
                for row in part:
                    session.merge(Embedding(**row))


__all__ = ["store_vectors", "stored_vectors"]
