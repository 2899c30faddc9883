"""A small in-memory cache of tensors that are costly to make and read-only once made (RISE's masks)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch


class TensorCache:
    """The most recently used tensors by key, within ``max_bytes`` (least recently used go first).

    ``hits`` and ``misses`` count lookups; a tensor larger than the whole budget is not kept.
    Callers must not modify the tensors they get.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def fits(self, nbytes: int) -> bool:
        """Whether a tensor of ``nbytes`` may be kept at all."""
        return 0 < nbytes <= self.max_bytes

    def get_or_make(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The tensor kept under ``key``, or ``make()``'s, kept when it fits (evicting the oldest)."""
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
            self.misses += 1
        value = make()
        nbytes = value.numel() * value.element_size()
        if self.fits(nbytes):
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while self.nbytes() > self.max_bytes:
                    self._items.popitem(last=False)
        return value

    def nbytes(self) -> int:
        """Bytes held."""
        return sum(t.numel() * t.element_size() for t in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every tensor and reset the counters."""
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0
