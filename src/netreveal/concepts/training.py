"""One training loop for heads on a frozen backbone: progress, validation per epoch, checkpoints, resume.

Determinism: the data order and any noise of epoch ``e`` come from generators seeded by
``(seed, e)`` alone, and a checkpoint is written (atomically) at the end of every epoch with the
trained parameters, the optimizer state, the global torch RNG state and the history. A run that is
interrupted (at any point) and started again with ``resume=True`` redoes the unfinished epoch from
its start and ends with the same weights as a run that was never interrupted.

Checkpoints are plain torch files of tensors, numbers, strings, lists and dicts, read back with
``weights_only=True``: nothing is unpickled.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError

log = logging.getLogger("netreveal.concepts")

CHECKPOINT_FORMAT = "netreveal-train-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"

StepLoss = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed determined by ``seed`` and ``keys`` (e.g. the epoch and a stream number)."""
    state = np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]]
    ).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def epoch_generator(
    seed: int, epoch: int, stream: int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """The generator for one stream (0: data order, 1: noise) of one epoch."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derived_seed(seed, epoch, stream))
    return gen


def checkpoint_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_FILE


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint safely (``weights_only=True``)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or truncated files
        raise NetrevealError(
            f"not a readable training checkpoint: {path} ({type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise NetrevealError(f"not a netreveal training checkpoint: {path}")
    if payload.get("version", 0) > CHECKPOINT_VERSION:
        raise NetrevealError(f"{path} was written by a newer netreveal; upgrade to resume from it")
    return payload


def fit(
    module: nn.Module,
    step_loss: StepLoss,
    validate: Callable[[], dict[str, float]],
    *,
    n_train: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    kind: str,
    config: dict | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = False,
    after_step: Callable[[], None] | None = None,
    weight_decay: float = 0.0,
) -> list[dict]:
    """Train ``module``'s trainable parameters with Adam; return the history (one dict per epoch).

    ``step_loss(indices, noise_generator)`` returns the loss of the training examples ``indices``
    (a shuffled mini-batch); ``validate()`` returns metrics (e.g. ``{"val_accuracy": 0.93}``) and
    is called in eval mode after each epoch. ``after_step()`` runs after every optimizer step (e.g. a
    projection onto constraints). ``config`` holds the settings a checkpoint must match to be resumed;
    ``kind`` names the model type.
    """
    if epochs < 0 or batch_size < 1 or n_train < 1:
        raise NetrevealError(
            "training needs epochs >= 0, batch_size >= 1 and a non-empty training set"
        )
    if lr <= 0:
        raise NetrevealError(f"learning rate must be positive, got {lr}")
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise NetrevealError("nothing to train: the module has no trainable parameters")
    device = params[0].device
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    config = dict(config or {})
    config.update(
        {
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "weight_decay": weight_decay,
            "n_train": n_train,
        }
    )
    history: list[dict] = []
    start = 0
    path = checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
    if path is not None and resume and path.is_file():
        payload = read_checkpoint(path)
        if payload.get("kind") != kind or payload.get("config") != plain(config):
            raise NetrevealError(
                f"{path} was written for other training settings; use another checkpoint dir or resume=False"
            )
        module.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["rng"])
        history = list(payload["history"])
        start = int(payload["epoch"])
        log.info("resuming %s training from %s after epoch %d", kind, path, start)
    epochs_bar = tqdm(
        range(start, epochs),
        desc=f"train {kind}",
        disable=not progress,
        unit="epoch",
        initial=start,
        total=epochs,
    )
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        module.train()
        order = torch.randperm(n_train, generator=epoch_generator(seed, epoch, 0))
        noise = epoch_generator(seed, epoch, 1, device)
        total, count = 0.0, 0
        steps = range(0, n_train, batch_size)
        for s in tqdm(
            steps, desc=f"epoch {epoch + 1}", disable=not progress, leave=False, unit="batch"
        ):
            idx = order[s : s + batch_size]
            loss = step_loss(idx, noise)
            if not torch.isfinite(loss):
                raise NetrevealError(
                    f"training diverged (loss {loss.item()}) at epoch {epoch + 1}; lower the learning rate"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        module.eval()
        with torch.no_grad():
            metrics = validate()
        row = {
            "epoch": epoch + 1,
            "loss": total / max(count, 1),
            **{k: float(v) for k, v in metrics.items()},
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if path is not None:
            save_checkpoint(
                path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "version": CHECKPOINT_VERSION,
                    "kind": kind,
                    "config": plain(config),
                    "epoch": epoch + 1,
                    "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "history": history,
                },
            )
        message = (
            f"{kind} epoch {epoch + 1}/{epochs}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
            + f" ({row['seconds']:.1f} s)"
        )
        log.info(message)
        if progress:
            epochs_bar.write(message)
            epochs_bar.set_postfix({k: round(v, 4) for k, v in metrics.items()})
    module.eval()
    return history


def plain(value: Any) -> Any:
    """``value`` as JSON-like plain data (base types only), safe to save and to compare after a
    save/load round trip."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    for kind in (
        bool,
        int,
        float,
        str,
    ):  # subclasses (e.g. torch's version string) to the base type
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    return str(value)


def first_image(train_data: Dataset, val_data: Dataset) -> torch.Tensor:
    """The first training image (3, H, W), once both sets are known to hold examples whose images
    are tensors."""
    if len(train_data) == 0 or len(val_data) == 0:
        raise NetrevealError("training and validation sets must not be empty")
    first = train_data[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise NetrevealError("dataset images must be (3, H, W) tensors in [0, 1]")
    return first


def run_info(
    settings: dict,
    train_data: Dataset,
    val_data: Dataset,
    train_seconds: float,
    cache_seconds: float,
) -> dict:
    """What a concept model records about its training run (``model.info``): the ``settings``
    (seed, learning rate...), the sizes of both sets and the time spent training and computing
    cached backbone features."""
    return {
        **settings,
        "train_size": len(train_data),
        "val_size": len(val_data),
        "train_seconds": train_seconds,
        "cache_seconds": cache_seconds,
    }


def num_classes_of(data: Dataset, labels: torch.Tensor | None = None) -> int:
    """Number of classes of a dataset: its ``num_classes`` / ``classes`` / ``class_names``
    attribute, else one more than the largest label (from ``labels``, the dataset's ``targets`` /
    ``labels`` attribute, or read item by item)."""
    n = getattr(data, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    for attr in ("classes", "class_names"):
        names = getattr(data, attr, None)
        if isinstance(names, (list, tuple, dict)) and len(names) > 0:
            return len(names)
    if labels is None:
        known = getattr(data, "targets", None)
        if known is None:
            known = getattr(data, "labels", None)
        if known is None:  # read every item once
            known = [int(data[i][1]) for i in range(len(data))]
        labels = torch.as_tensor(list(known) if not isinstance(known, torch.Tensor) else known)
    if labels.numel() == 0:
        raise NetrevealError("cannot tell the number of classes; pass num_classes")
    return int(labels.max()) + 1


def class_names_of(data: Dataset, n: int) -> list[str]:
    """The dataset's class names when it has them, else ``class_0`` ... ``class_{n-1}``."""
    for attr in ("class_names", "classes"):
        names = getattr(data, attr, None)
        if isinstance(names, dict):
            names = list(names)
        if isinstance(names, (list, tuple)) and len(names) == n:
            return [str(x) for x in names]
    return [f"class_{i}" for i in range(n)]


class ImageFolderData(Dataset):
    """A folder with one sub-folder per class (``root/<class>/*.png``) as ``(image, label)`` pairs.

    ``preprocess`` turns a PIL image into a (3, S, S) tensor in [0, 1] (e.g. a model adapter's
    ``preprocess``). Classes are the sub-folder names in sorted order unless ``class_names`` fixes
    them (folders not among them are an error).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        preprocess: Callable,
        class_names: Sequence[str] | None = None,
    ):
        from netreveal.data.images import image_records

        records = image_records(root)
        folders = sorted({r.label_name for r in records if r.label_name is not None})
        if any(r.label_name is None for r in records) or not folders:
            raise NetrevealError(f"{root} must hold one sub-folder of images per class")
        self.class_names = list(class_names) if class_names is not None else folders
        unknown = [f for f in folders if f not in self.class_names]
        if unknown:
            raise NetrevealError(f"folder {unknown[0]!r} in {root} is not one of the classes")
        self.records = records
        self.labels = [self.class_names.index(r.label_name) for r in records]
        self.preprocess = preprocess
        self.keys = [
            str(Path(r.path).relative_to(root)) if Path(root).is_dir() else r.path.name
            for r in records
        ]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from netreveal.data.images import load_image

        return self.preprocess(load_image(self.records[i].path)), self.labels[i]


class Subset(Dataset):
    """Items ``indices`` of a dataset, keeping its ``class_names``, ``targets`` and ``keys``."""

    def __init__(self, data: Dataset, indices: Sequence[int]):
        self.data, self.indices = data, [int(i) for i in indices]
        names = getattr(data, "class_names", None)
        if names is not None:
            self.class_names = list(names)
        for attr in ("targets", "labels", "keys"):
            values = getattr(data, attr, None)
            if values is not None and not callable(values):
                setattr(
                    self, "targets" if attr == "labels" else attr, [values[i] for i in self.indices]
                )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.data[self.indices[i]]


def split_dataset(data: Dataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """A seeded random split of a dataset into training and validation subsets."""
    train, val = split_indices(len(data), val_fraction, seed)
    return Subset(data, train), Subset(data, val)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n)`` into training and validation indices."""
    if not 0 < val_fraction < 1:
        raise NetrevealError(f"validation fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(
        n, generator=torch.Generator().manual_seed(derived_seed(seed, 0, 9))
    ).tolist()
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise NetrevealError(f"{n} images are too few to hold out a validation set")
    return sorted(perm[n_val:]), sorted(perm[:n_val])
