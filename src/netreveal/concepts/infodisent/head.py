"""The InfoDisent head: orthogonal mixing of the channels, signed pooling, non-negative classifier."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from netreveal.concepts.backbone import FeatureExtractor
from netreveal.concepts.base import ConceptModel, ConceptRecord, load_model, save_model
from netreveal.concepts.prototypes import Prototypes
from netreveal.errors import NetrevealError
from netreveal.results import register


def gumbel_max(
    values: torch.Tensor, tau: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-softmax relaxation of ``values.max(-1)``: sum of values weighted by
    softmax((values + g) / tau) with g ~ Gumbel(0, 1) drawn from ``generator``."""
    u = torch.rand(values.shape, generator=generator, device=values.device, dtype=values.dtype)
    tiny = torch.finfo(values.dtype).tiny
    g = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))
    weights = torch.softmax((values + g) / tau, dim=-1)
    return (weights * values).sum(dim=-1)


def signed_pool(
    maps: torch.Tensor, tau: float | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """v_k = max ReLU(J_k) - max ReLU(-J_k) over positions, for maps (B, K, h, w) -> (B, K).

    With ``tau`` the two maxima are Gumbel-softmax relaxations (training); without, exact."""
    flat = maps.flatten(2)
    pos, neg = flat.clamp_min(0), (-flat).clamp_min(0)
    if tau is None:
        return pos.amax(dim=-1) - neg.amax(dim=-1)
    return gumbel_max(pos, tau, generator) - gumbel_max(neg, tau, generator)


@register
@dataclasses.dataclass(kw_only=True)
class InfoDisentRecord(ConceptRecord):
    """A saved InfoDisent head: S, W, the Gumbel temperature, the feature grid, the prototypes."""

    channels: int
    num_classes: int
    tau: float
    S: torch.Tensor
    weight: torch.Tensor
    grid: list | None
    prototypes: Prototypes | None = None


class InfoDisentHead(ConceptModel):
    """The trainable part of InfoDisent: S (D, D) and W (C, D). Call it on feature maps (B, D, h, w).

    Besides the parameters and the common metadata (:class:`~netreveal.concepts.base.ConceptModel`)
    it carries the feature grid it was trained at and, once mined, its :class:`Prototypes`.
    """

    kind = "infodisent"
    title = "InfoDisent head"
    record_type = InfoDisentRecord

    def __init__(
        self,
        channels: int,
        num_classes: int,
        *,
        tau: float = 0.5,
        class_names: list[str] | None = None,
    ):
        if channels < 1 or num_classes < 2:
            raise NetrevealError("an InfoDisent head needs >= 1 channel and >= 2 classes")
        if tau <= 0:
            raise NetrevealError(f"Gumbel temperature must be positive, got {tau}")
        super().__init__(num_classes, class_names)
        self.S = nn.Parameter(torch.zeros(channels, channels))
        self.weight = nn.Parameter(torch.zeros(num_classes, channels))
        self.tau = float(tau)
        self.grid: list[int] | None = None
        self.prototypes: Prototypes | None = None

    @property
    def channels(self) -> int:
        return int(self.S.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def rotation(self) -> torch.Tensor:
        """U = matrix_exp(S - S^T), orthogonal (D, D)."""
        return torch.linalg.matrix_exp(self.S - self.S.T)

    def class_weights(self) -> torch.Tensor:
        """The non-negative classifier weights in use (C, D): ``W.clamp_min(0)`` in value, with the
        gradient passed straight through to W (so a weight sitting at 0 can grow again)."""
        w = self.weight
        return w + (w.clamp_min(0) - w).detach()

    def components(self, features: torch.Tensor) -> torch.Tensor:
        """J = U x per position: (B, D, h, w) -> (B, D, h, w)."""
        if features.dim() != 4 or features.shape[1] != self.channels:
            raise NetrevealError(
                f"expected feature maps (B, {self.channels}, h, w), got {tuple(features.shape)}"
            )
        return torch.einsum("kd,bdhw->bkhw", self.rotation().to(features.dtype), features)

    def pool(self, comps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Signed pooling (B, D); relaxed with Gumbel noise in training mode."""
        return signed_pool(comps, self.tau if self.training else None, generator)

    def forward(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.pool(self.components(features), generator) @ self.class_weights().T.to(
            features.dtype
        )

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp W at 0 (run after each optimizer step)."""
        self.weight.clamp_(min=0)

    def record(self) -> InfoDisentRecord:
        return InfoDisentRecord(
            **self.common_fields(),
            channels=self.channels,
            num_classes=self.num_classes,
            tau=self.tau,
            S=self.S.detach().cpu().clone(),
            weight=self.class_weights().detach().cpu().clone(),
            grid=self.grid,
            prototypes=self.prototypes,
        )

    @classmethod
    def from_record(cls, rec: InfoDisentRecord) -> InfoDisentHead:
        head = cls(rec.channels, rec.num_classes, tau=rec.tau, class_names=rec.class_names)
        with torch.no_grad():
            head.S.copy_(rec.S)
            head.weight.copy_(rec.weight)
        head.restore_common(rec)
        head.grid, head.prototypes = rec.grid, rec.prototypes
        return head.eval()


def save_head(head: InfoDisentHead, path: str | os.PathLike) -> Path:
    """Save a head (with its prototypes) as a netreveal result file."""
    return save_model(head, path)


def load_head(path: str | os.PathLike) -> InfoDisentHead:
    """Load a head saved by :func:`save_head` (``weights_only=True``)."""
    return load_model(path, InfoDisentHead)


def extractor_for(head: InfoDisentHead, backbone: nn.Module) -> FeatureExtractor:
    """The feature extractor a trained head reads from ``backbone``."""
    size = head.image_size or [224, 224]
    return FeatureExtractor(backbone, head.read_layer(), image_size=tuple(size))
