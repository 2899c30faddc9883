"""Path scores and integrated gradients of masked images, batched over images, terms and path steps.

A *term* is a mask used one of two ways on an image I with baseline B:

- deletion: ``D(M) = I*M + B*(1-M)`` (mask 1 keeps the image; 0 removes it),
- insertion: ``P(M) = B*M + I*(1-M)`` (only the pixels the mask marks salient, 0, are pasted on B).

Both are scored along the straight path from mask 0 to M, ``t_s = s/N`` for ``s = 1..N``: for
deletion that path runs from the baseline to ``D(M)``, for insertion from the image to ``P(M)``.
The *path score* of a term is the mean target probability over the N path images; its gradient
with respect to the mask is the integrated gradient the I-GOS family descends along (with Gaussian
noise added to every path image while computing it). Every (image, term, step) triple is one
model input; they are run in chunks of ``batch_size`` with one forward (and backward) per chunk.
"""

from __future__ import annotations

import torch
from torch import nn


class PathScorer:
    """Scores masked-image paths of a fixed batch of images for fixed target classes."""

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        baselines: torch.Tensor,
        targets: torch.Tensor,
        steps: int,
        batch_size: int,
    ):
        self.model = model
        self.images = images
        self.baselines = baselines
        self.delta = images - baselines
        self.targets = targets
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.forward_images = 0  # model inputs evaluated so far (for cost reporting)

    def _chunks(self, n_items: int):
        for start in range(0, n_items, self.batch_size):
            yield start, min(start + self.batch_size, n_items)

    def run(
        self,
        up_masks: torch.Tensor,
        inserts: torch.Tensor,
        rows: torch.Tensor,
        noise: torch.Tensor | None = None,
        grad: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Path scores (R, K) of upsampled term masks ``up_masks`` (R, K, H, W) for images ``rows``.

        ``inserts`` (K,) bool marks insertion terms. ``noise`` (K, N, C, H, W) is added to the path
        images (the same draw for every image, so an image's result never depends on its batch).
        With ``grad`` also returns d(path score)/d(up_masks), (R, K, H, W).
        """
        n_rows, n_terms = up_masks.shape[:2]
        steps = self.steps
        total = n_rows * n_terms * steps
        device = up_masks.device
        flat_masks = up_masks.reshape(n_rows * n_terms, *up_masks.shape[2:])
        values = torch.zeros(n_rows * n_terms, device=device, dtype=up_masks.dtype)
        grads = torch.zeros_like(flat_masks) if grad else None
        sign = 1.0 - 2.0 * inserts.to(up_masks.dtype)  # +1 deletion, -1 insertion
        for start, stop in self._chunks(total):
            item = torch.arange(start, stop, device=device)
            pair = item // steps  # index into (R*K)
            r, k, s = pair // n_terms, pair % n_terms, item % steps
            t = (s + 1).to(up_masks.dtype) / steps
            image_idx = rows[r]
            u = t[:, None, None] * flat_masks[pair]
            if grad:
                u.requires_grad_(True)
            fill = torch.where(
                inserts[k][:, None, None, None], self.images[image_idx], self.baselines[image_idx]
            )
            x = fill + (sign[k][:, None, None] * u)[:, None] * self.delta[image_idx]
            if noise is not None:
                x = x + noise[k, s]
            with torch.set_grad_enabled(grad):
                logits = self.model(x)
                probs = logits.softmax(dim=1).gather(1, self.targets[image_idx][:, None]).squeeze(1)
            self.forward_images += stop - start
            values.index_add_(0, pair, probs.detach() / steps)
            if grad:
                (g,) = torch.autograd.grad(probs.sum(), u)
                grads.index_add_(0, pair, g * (t / steps)[:, None, None])
        values = values.view(n_rows, n_terms)
        if grad:
            grads = grads.view_as(up_masks)
        return values, grads

    @torch.no_grad()
    def probs(
        self, masks_up: torch.Tensor, insert: bool, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Target probability of each image with its own (R, H, W) mask applied (no path), (R,).

        ``rows`` names the image of each mask (default: all images in order)."""
        if rows is None:
            rows = torch.arange(masks_up.shape[0], device=masks_up.device)
        out = []
        for start, stop in self._chunks(masks_up.shape[0]):
            m = masks_up[start:stop, None]
            idx = rows[start:stop]
            if insert:
                x = self.images[idx] - m * self.delta[idx]
            else:
                x = self.baselines[idx] + m * self.delta[idx]
            logits = self.model(x)
            self.forward_images += stop - start
            out.append(logits.softmax(dim=1).gather(1, self.targets[idx, None]).squeeze(1))
        return torch.cat(out)
