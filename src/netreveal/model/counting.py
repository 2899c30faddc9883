"""Count what a method asks of a model: images through forward passes and through backward passes.

:class:`CountingModel` wraps a model and counts images, not calls, so batching cannot hide work; a
backward pass is counted when the gradient reaches the model's output. Cost in forward-pass
equivalents takes a backward pass as two forward passes.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

BACKWARD_COST = 2.0  # a backward pass costs about two forward passes


@dataclasses.dataclass
class EvalCounts:
    """Images through forward passes, images through backward passes, and forward calls."""

    forward: int = 0
    backward: int = 0
    calls: int = 0
    batch_sizes: list[int] = dataclasses.field(default_factory=list)
    channels_last: int = 0  # images fed in the channels-last layout

    def forward_equivalents(self) -> float:
        """forward + BACKWARD_COST x backward."""
        return self.forward + BACKWARD_COST * self.backward


class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, counts: EvalCounts) -> torch.Tensor:
        ctx.counts, ctx.images = counts, logits.shape[0]
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.counts.backward += ctx.images
        return grad, None


class CountingModel(nn.Module):
    """``model`` with :attr:`counts` of the images it sees (reset with :meth:`reset`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.counts = EvalCounts()

    def reset(self) -> EvalCounts:
        """Start counting afresh; returns the counts so far."""
        done, self.counts = self.counts, EvalCounts()
        return done

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        self.counts.forward += n
        self.counts.calls += 1
        self.counts.batch_sizes.append(n)
        if x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
            self.counts.channels_last += n
        out = self.model(x)
        if torch.is_grad_enabled() and out.requires_grad:
            out = _CountBackward.apply(out, self.counts)
        return out
