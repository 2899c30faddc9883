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
    not cached (the column's size); putting a text again replaces its vector.
    """

    def __init__(self, store: Store, chunk: int = 500):
        self.store = store
        self.chunk = int(chunk)

    def get(self, texts: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """Cached vectors of the ``texts`` held for ``model``."""
        self._check_model(model)
        wanted = [t for t in texts if self._cacheable(t)]
        stored = stored_vectors(self.store, wanted, model, self.chunk)
        return {text: np.frombuffer(vector, dtype="<f4").astype(np.float32) for text, vector in stored.items()}

    def put(self, vectors: Mapping[str, Any], model: str) -> None:
        """Store (or replace) the vectors of ``model``."""
        self._check_model(model)
        rows = [
            {"model": model, "text": text, "vector": _vector_bytes(v)}
            for text, v in vectors.items()
            if self._cacheable(text)
        ]
        store_vectors(self.store, rows, self.chunk)

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
