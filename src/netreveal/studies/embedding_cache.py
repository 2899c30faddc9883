"""Label embeddings cached in the store (the ``embeddings`` table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.embeddings import store_vectors, stored_vectors
from netreveal.store.studies import MAX_TEXT


class StoreEmbeddingCache:
    """Label embeddings kept in the ``embeddings`` table, keyed by (model id, text).

    Fits :class:`netreveal.labels.embed.EmbeddingCache`. Vectors are stored as float32
    little-endian bytes; ``get`` returns 1-D float32 arrays. Texts longer than 200 characters are
    not cached (the column's size); putting a text again replaces its vector. With ``remember``
    the vectors read or written are also kept in memory, so asking again costs no query (a
    long-running server analysing the same labels again and again).
    """

    def __init__(self, store: Store, chunk: int = 500, *, remember: bool = False):
        self.store = store
        self.chunk = int(chunk)
        self._memory: dict[str, dict[str, np.ndarray]] | None = {} if remember else None

    def get(self, texts: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """Cached vectors of the ``texts`` held for ``model``."""
        self._check_model(model)
        wanted = [t for t in texts if self._cacheable(t)]
        held = {} if self._memory is None else self._memory.get(model, {})
        found = {t: held[t] for t in wanted if t in held}
        stored = stored_vectors(self.store, [t for t in wanted if t not in found], model, self.chunk)
        read = {text: np.frombuffer(vector, dtype="<f4").astype(np.float32) for text, vector in stored.items()}
        if self._memory is not None:
            self._memory.setdefault(model, {}).update(read)
        return {**found, **read}

    def put(self, vectors: Mapping[str, Any], model: str) -> None:
        """Store (or replace) the vectors of ``model``."""
        self._check_model(model)
        rows = [
            {"model": model, "text": text, "vector": _vector_bytes(v)}
            for text, v in vectors.items()
            if self._cacheable(text)
        ]
        store_vectors(self.store, rows, self.chunk)
        if self._memory is not None:
            held = self._memory.setdefault(model, {})
            for row in rows:
                held[row["text"]] = np.frombuffer(row["vector"], dtype="<f4").astype(np.float32)

    @staticmethod
    def _cacheable(text: str) -> bool:
        return isinstance(text, str) and 0 < len(text) <= MAX_TEXT and "\x00" not in text

    @staticmethod
    def _check_model(model: str) -> None:
        if not isinstance(model, str) or not model or len(model) > 200:
            raise NetrevealError("the embedding model id must be a non-empty string of at most 200 characters")


def _vector_bytes(vector: Any) -> bytes:
    if hasattr(vector, "detach"):  # a torch tensor
        vector = vector.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(vector, dtype="<f4").reshape(-1)).tobytes()


__all__ = ["StoreEmbeddingCache"]
