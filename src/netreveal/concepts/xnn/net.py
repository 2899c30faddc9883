"""The XNN itself: a sparse reconstruction autoencoder on a layer's activation vectors."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from netreveal.concepts.base import ConceptModel, ConceptRecord, load_model, save_model
from netreveal.concepts.layer_reading import LayerSpec
from netreveal.errors import NetrevealError
from netreveal.results import register


def pull_away(bases: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between distinct rows of ``bases`` (K, D); 0 for K < 2."""
    k = bases.shape[0]
    if k < 2:
        return bases.new_zeros(())
    unit = F.normalize(bases, dim=1)
    gram = unit @ unit.T
    off = gram.pow(2).sum() - gram.diagonal().pow(2).sum()
    return off / (k * (k - 1))


@register
@dataclasses.dataclass(kw_only=True)
class XNNRecord(ConceptRecord):
    """A saved XNN: its sizes and mode, its state dict, the map layer of its heatmaps and its top
    images per x-feature."""

    in_features: int
    num_classes: int
    num_features: int
    faithful: str
    state: dict
    map_layer: dict | None
    top_images: torch.Tensor | None = None
    top_scores: torch.Tensor | None = None
    keys: list | None = None


class XNN(ConceptModel):
    """The explanation network on activations f (B, D): ``forward(f) -> (x (B, K), y_hat (B, C))``.

    Besides the common metadata (:class:`~netreveal.concepts.base.ConceptModel`) it carries the
    spatial layer its heatmaps are computed on (``map_layer``) and, once mined, the top images of
    each x-feature (``top_images`` / ``top_scores`` (K, m), ``keys`` naming the training images).
    """

    kind = "xnn"
    title = "XNN"
    record_type = XNNRecord

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_features: int = 5,
        *,
        faithful: str = "head",
        classifier: nn.Linear | None = None,
        class_names: list[str] | None = None,
    ):
        if faithful not in ("head", "linear"):
            raise NetrevealError(f"faithful must be 'head' or 'linear', got {faithful!r}")
        if num_features < 1:
            raise NetrevealError("XNN needs at least one x-feature")
        super().__init__(num_classes, class_names)
        self.faithful = faithful
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        self.register_buffer("spread", torch.ones(()))
        self.encoder = nn.Linear(in_features, num_features)
        self.bases = nn.Parameter(torch.randn(num_features, in_features) / math.sqrt(in_features))
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))
        if faithful == "head":
            if classifier is None:
                raise NetrevealError("faithful='head' needs the model's classifier layer")
            if classifier.in_features != in_features or classifier.out_features != num_classes:
                raise NetrevealError(
                    f"classifier is {classifier.in_features}->{classifier.out_features}, "
                    f"activation has {in_features} features and {num_classes} classes"
                )
            self.register_buffer("head_weight", classifier.weight.detach().clone())
            bias = (
                classifier.bias.detach().clone()
                if classifier.bias is not None
                else torch.zeros(num_classes)
            )
            self.register_buffer("head_bias", bias)
            self.readout = None
        else:
            self.readout = nn.Linear(num_features, num_classes)
        self.map_layer: LayerSpec | None = None
        self.top_images: torch.Tensor | None = None
        self.top_scores: torch.Tensor | None = None
        self.keys: list | None = None

    @property
    def in_features(self) -> int:
        return int(self.bases.shape[1])

    @property
    def num_features(self) -> int:
        return int(self.bases.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.no_grad()
    def set_statistics(self, features: torch.Tensor) -> None:
        """Standardise encoder inputs by the training features' mean / std; start the decoder at
        the mean (x = 0 reconstructs the average activation); set the spread s."""
        mean = features.mean(dim=0)
        self.mean.copy_(mean)
        self.scale.copy_(features.std(dim=0).clamp_min(1e-6))
        self.spread.copy_((features - mean).pow(2).sum(dim=1).mean().sqrt().clamp_min(1e-6))
        self.decoder_bias.copy_(mean)

    def encode_pre(self, f: torch.Tensor) -> torch.Tensor:
        """x-feature pre-activations (B, K)."""
        return self.encoder((f - self.mean) / self.scale)

    def encode(self, f: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encode_pre(f))

    def unit_bases(self) -> torch.Tensor:
        """Concept bases (K, D), unit norm."""
        return F.normalize(self.bases, dim=1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.unit_bases() + self.decoder_bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructed logits (B, C) from x-features."""
        if self.readout is None:
            return self.decode(x) @ self.head_weight.T + self.head_bias
        return self.readout(x)

    def concept_matrix(self) -> torch.Tensor:
        """M (C, K): y_hat = x M^T + const, so x_j * M[c, j] is x-feature j's share of logit c."""
        if self.readout is None:
            return self.head_weight @ self.unit_bases().T
        return self.readout.weight

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encode(f)
        return x, self.predict(x)

    def losses(self, f: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four loss terms (unweighted) for activations f and the model's logits."""
        x, y_hat = self(f)
        faith = F.kl_div(
            y_hat.log_softmax(1), logits.log_softmax(1), log_target=True, reduction="batchmean"
        )
        sparsity = (x.sum(dim=1) / self.spread).mean()
        recon = (f - self.decode(x)).pow(2).sum(dim=1).mean() / self.spread.pow(2)
        return {
            "faithfulness": faith,
            "sparsity": sparsity,
            "pull_away": pull_away(self.bases),
            "reconstruction": recon,
        }

    def record(self) -> XNNRecord:
        return XNNRecord(
            **self.common_fields(),
            in_features=self.in_features,
            num_classes=self.num_classes,
            num_features=self.num_features,
            faithful=self.faithful,
            state={k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            map_layer=self.map_layer.as_dict() if self.map_layer is not None else None,
            top_images=self.top_images,
            top_scores=self.top_scores,
            keys=self.keys,
        )

    @classmethod
    def from_record(cls, rec: XNNRecord) -> XNN:
        classifier = None
        if rec.faithful == "head":
            classifier = nn.Linear(rec.in_features, rec.num_classes)
        net = cls(
            rec.in_features,
            rec.num_classes,
            rec.num_features,
            faithful=rec.faithful,
            classifier=classifier,
            class_names=rec.class_names,
        )
        net.load_state_dict(rec.state)
        net.restore_common(rec)
        net.map_layer = LayerSpec.from_dict(rec.map_layer) if rec.map_layer is not None else None
        net.top_images, net.top_scores, net.keys = rec.top_images, rec.top_scores, rec.keys
        return net.eval()


def save_xnn(xnn: XNN, path: str | os.PathLike) -> Path:
    """Save an XNN as a netreveal result file."""
    return save_model(xnn, path)


def load_xnn(path: str | os.PathLike) -> XNN:
    """Load an XNN saved by :func:`save_xnn` (``weights_only=True``)."""
    return load_model(path, XNN)
