"""Targets: which class score an explanation is about, for each image of a batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from netreveal.errors import NetrevealError

Target = None | int | Sequence[int] | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
SCORES = ("logit", "prob", "log_prob")
_CHECKED = "_netreveal_checked_classes"  # attribute of class-index tensors already checked (see mark_checked)


def mark_checked(indices: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mark class indices that netreveal resolved itself (and so knows to be in range for a model
    with ``n_classes`` classes): passed again as a target, they and their slices skip the range
    check, which reads them on the host (on a GPU, a wait for the device). For a method that
    explains the same classes many times (SmoothGrad); never for tensors a caller may change."""
    setattr(indices, _CHECKED, n_classes)
    return indices


def _checked_for(target: Target) -> int | None:
    return getattr(target, _CHECKED, None) if isinstance(target, torch.Tensor) else None


def slice_targets(target: Target, start: int, stop: int) -> Target:
    """The part of ``target`` for images ``start:stop`` of a batch (shared specs pass through)."""
    if target is None or isinstance(target, int) or (callable(target) and not isinstance(target, torch.Tensor)):
        return target
    if isinstance(target, torch.Tensor):
        if not target.dim():
            return int(target)
        part = target[start:stop]
        checked = _checked_for(target)
        return part if checked is None else mark_checked(part, checked)
    return list(target)[start:stop]


def check_count(target: Target, n: int) -> None:
    """Raise when ``target`` lists classes for another number of images than ``n``."""
    listed = isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.dim() > 0)
    if listed and len(target) != n:
        raise NetrevealError(f"got {len(target)} targets for a batch of {n} images")


def class_indices(target: Target, logits: torch.Tensor, method: str) -> torch.Tensor:
    """:func:`resolve_targets` for methods that explain a class index (a callable is an error)."""
    if callable(target) and not isinstance(target, torch.Tensor):
        raise NetrevealError(f"{method} explains class indices; a callable target is not supported")
    return resolve_targets(target, logits)


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Class indices (B,) for ``target``: None = predicted class, an int for all, or one per image.

    A callable target has no class index: it gives -1 for every image.
    """
    batch, n_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if callable(target) and not isinstance(target, torch.Tensor):
        return torch.full((batch,), -1, dtype=torch.long, device=logits.device)
    if isinstance(target, int):
        idx = torch.full((batch,), target, dtype=torch.long, device=logits.device)
    else:
        idx = torch.as_tensor(list(target) if not isinstance(target, torch.Tensor) else target)
        idx = idx.to(device=logits.device, dtype=torch.long).reshape(-1)
        if idx.numel() != batch:
            raise NetrevealError(f"got {idx.numel()} targets for a batch of {batch} images")
        if _checked_for(target) == n_classes:
            return idx
    bad = (idx < 0) | (idx >= n_classes)
    if bool(bad.any()):
        raise NetrevealError(
            f"class index {int(idx[bad][0])} out of range: the model has {n_classes} classes"
        )
    return idx


def target_scores(logits: torch.Tensor, target: Target, score: str = "logit") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image scores (B,) to explain, and the class indices they belong to (B,)."""
    if score not in SCORES:
        raise NetrevealError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    idx = resolve_targets(target, logits)
    if callable(target) and not isinstance(target, torch.Tensor):
        values = target(logits)
        if values.shape != (logits.shape[0],):
            raise NetrevealError("a callable target must return one score per image, shape (B,)")
        return values, idx
    if score == "prob":
        values = logits.softmax(dim=1)
    elif score == "log_prob":
        values = logits.log_softmax(dim=1)
    else:
        values = logits
    return values.gather(1, idx[:, None]).squeeze(1), idx
