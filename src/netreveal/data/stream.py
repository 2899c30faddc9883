"""Reading a source's images through a ``torch.utils.data.DataLoader`` with worker processes, as
:class:`~netreveal.data.inputs.Inputs` of at most N images at a time, so memory stays bounded by
one shard however many images a source has."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from netreveal.data.inputs import Inputs
from netreveal.data.sources import ImageItem, ImageSource, Reading
from netreveal.errors import NetrevealError

READ_CHUNK = 8  # images one worker reads per request


def default_loader_workers() -> int:
    """Image-reading worker processes by default: half the CPU cores (the other half runs the
    model), at most 4; 0 (read in this process) on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cores // 2)


class ImageDataset(Dataset):
    """A map-style dataset of a source's images read for one model (items are :class:`ImageItem`)."""

    def __init__(self, source: ImageSource, reading: Reading):
        self.source, self.reading = source, reading

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> ImageItem | ReadError:
        try:
            return self.source.item(index, self.reading)
        except NetrevealError as err:  # carried to the reading process as a value: one line there, no worker traceback
            return ReadError(str(err))


@dataclass(frozen=True)
class ReadError:
    """An image that could not be read, and the one-line reason."""

    message: str


def collate_inputs(items: Sequence[ImageItem | ReadError]) -> Inputs | ReadError:
    """One :class:`Inputs` from items (images stacked, the rest as lists), or the first read error."""
    if not items:
        raise NetrevealError("no image to read")
    failed = next((i for i in items if isinstance(i, ReadError)), None)
    if failed is not None:
        return failed
    return Inputs([i.key for i in items], torch.stack([i.image for i in items]), [i.label for i in items],
                  [i.label_name for i in items], [i.mask for i in items], [i.parts for i in items])


def concat_inputs(parts: Sequence[Inputs]) -> Inputs:
    """Several :class:`Inputs` as one, in order."""
    if len(parts) == 1:
        return parts[0]
    return Inputs([k for p in parts for k in p.keys], torch.cat([p.images for p in parts]),
                  [v for p in parts for v in p.labels], [v for p in parts for v in p.label_names],
                  [v for p in parts for v in p.masks],
                  [v for p in parts for v in (p.part_masks or [None] * len(p.keys))])


def _loader(source: ImageSource, reading: Reading, batches: list[list[int]], workers: int) -> DataLoader:
    if workers < 0:
        raise NetrevealError(f"--loader-workers must be at least 0, got {workers}")
    return DataLoader(ImageDataset(source, reading), batch_sampler=batches, num_workers=min(workers, len(batches)),
                      collate_fn=collate_inputs)


def stream_shards(source: ImageSource, reading: Reading, shard_size: int,
                  workers: int | None = None) -> Iterator[Inputs]:
    """The source's images as :class:`Inputs` of ``shard_size`` images (the last may be smaller),
    in order, read ahead by ``workers`` processes (default :func:`default_loader_workers`; 0 reads
    in this process). Only the shards being read and the one returned are in memory."""
    if shard_size < 1:
        raise NetrevealError(f"--shard-size must be at least 1, got {shard_size}")
    workers = default_loader_workers() if workers is None else workers
    n = len(source)
    chunk = max(1, min(READ_CHUNK, math.ceil(shard_size / max(1, workers))))
    batches, owner = [], []
    for shard, start in enumerate(range(0, n, shard_size)):
        stop = min(start + shard_size, n)
        for first in range(start, stop, chunk):
            batches.append(list(range(first, min(first + chunk, stop))))
            owner.append(shard)
    parts: list[Inputs] = []
    current = 0
    for shard, part in zip(owner, _loader(source, reading, batches, workers)):
        if isinstance(part, ReadError):
            raise NetrevealError(part.message)
        if shard != current and parts:
            yield concat_inputs(parts)
            parts, current = [], shard
        parts.append(part)
    if parts:
        yield concat_inputs(parts)


def read_all(source: ImageSource, reading: Reading, workers: int | None = None) -> Inputs:
    """Every image of ``source`` as one :class:`Inputs` (for one shard, or a small source)."""
    return next(iter(stream_shards(source, reading, max(1, len(source)), workers)))


__all__ = ["ImageDataset", "ReadError", "collate_inputs", "concat_inputs", "default_loader_workers", "read_all",
           "stream_shards"]
